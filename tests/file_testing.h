/* Helpers of the file tests (test_io.c, test_safetensors.c): a fresh
 * temporary folder per test (mkdtemp, removed afterwards), paths in it, and
 * raw file writes. Include after "testing.h"; define DIR_TEMPLATE first. */
#ifndef NABLA_FILE_TESTING_H
#define NABLA_FILE_TESTING_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char pathbuf[4][512];

/* dir/name, in one of four rotating buffers. */
static const char *P(const char *name)
{
    static int k;
    k = (k + 1) % 4;
    snprintf(pathbuf[k], sizeof pathbuf[k], "%s/%s", dir, name);
    return pathbuf[k];
}

static int setup_dir(void **state)
{
    (void)state;
    strcpy(dir, DIR_TEMPLATE);
    return mkdtemp(dir) ? 0 : -1;
}

static void remove_tree(const char *d)
{
    DIR *dd = opendir(d);
    if (!dd)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(dd))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(dd);
    rmdir(d);
}

static int teardown_dir(void **state)
{
    (void)state;
    remove_tree(dir);
    nb_clear_error();
    return 0;
}

/* Run last: every test freed what it made. */
static void test_no_leaks(void **state)
{
    (void)state;
    assert_int_equal(nb_live_tensors(), 0);
}

static inline void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

#endif
