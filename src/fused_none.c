/* No compiled fused programs: the table nabla-fusegen (src/fused_gen.c)
 * links, since it writes the library's own. */
#include "fused_internal.h"

const nb_compiled nb__compiled_programs[] = {{NULL, NULL, NULL}};
