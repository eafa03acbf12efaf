/* The version: the library's string, the headers' macros and meson's
 * project(version:) agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "nabla/nabla.h"

static void test_runtime_is_header(void **state)
{
    (void)state;
    assert_non_null(nb_version());
    assert_string_equal(nb_version(), NB_VERSION_STRING);
    assert_string_equal(nb_version(), NB_EXPECT_VERSION); /* meson's project version */
}

static void test_macros_spell_string(void **state)
{
    (void)state;
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", NB_VERSION_MAJOR, NB_VERSION_MINOR, NB_VERSION_PATCH);
    assert_string_equal(buf, NB_VERSION_STRING);
    assert_true(NB_VERSION_MAJOR >= 0 && NB_VERSION_MINOR >= 0 && NB_VERSION_PATCH >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_is_header),
        cmocka_unit_test(test_macros_spell_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
