/* PLACEHOLDER */
#include "nabla/nabla.h"
int main(void) { return 0; }
