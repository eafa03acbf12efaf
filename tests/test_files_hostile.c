/* Files that are not what they seem, and saves that do not finish (files
 * are untrusted): FIFOs, devices, folders and sockets given to every
 * reader; saves over what is not a regular file, through symbolic links,
 * onto a temporary name something else holds; saves killed half-way and
 * saves racing each other; gzip data beyond what its size allows. Every
 * fixture is made in a fresh temporary folder, removed afterwards. The
 * readers must answer at once: an alarm fails a test that blocks. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "nabla/nabla.h"

#define DIR_TEMPLATE "/tmp/nb_test_hostile_XXXXXX"
#include "file_testing.h"

static nb_tensor *named(nb_tensor *t, const char *name)
{
    assert_non_null(nb_set_name(t, name));
    return t;
}

/* Entries of dir other than keep (NULL: all). */
static int others(const char *keep)
{
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
             (!keep || strcmp(e->d_name, keep));
    closedir(dd);
    return n;
}

static void make_socket(const char *path)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof a.sun_path);
    strcpy(a.sun_path, path);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    close(s); /* the socket file stays */
}

/* The four readers (and the MNIST loader) on p; each must fail at once
 * with "<function>: <p>: is <what>, not a regular file". */
static void readers_refuse(const char *p, const char *what)
{
    char want[600];
    snprintf(want, sizeof want, "%s: is %s, not a regular file", p, what);
    nb_tensor *x = NULL, *y = NULL;
    FAILS(nb_read_idx(p), "nb_read_idx: ", want);
    FAILS_RC(nb_read_csv(p, -1, &x, &y), "nb_read_csv: ", want);
    nb_tensor *t = named(nb_zeros(NB_F32, NB_SHAPE(2)), "t");
    FAILS_RC(nb_load_safetensors(p, 1, &t), "nb_load_safetensors: ", want);
    FAILS_RC(nb_load_safetensors(p, 1, &t, .partial = true), "nb_load_safetensors: ", want);
    nb_free(t);
}

static void test_readers_refuse_what_is_not_a_file(void **state)
{
    (void)state;
    alarm(20); /* a reader that blocks on the FIFO fails the test */
    assert_int_equal(mkfifo(P("fifo"), 0600), 0);
    readers_refuse(P("fifo"), "a FIFO (named pipe)");
    /* A FIFO with a writer waiting would block a plain open too. */
    assert_int_equal(symlink(P("fifo"), P("link-to-fifo")), 0);
    readers_refuse(P("link-to-fifo"), "a FIFO (named pipe)");
    readers_refuse("/dev/null", "a character device");
    readers_refuse("/dev/zero", "a character device");
    mkdir(P("folder"), 0700);
    readers_refuse(P("folder"), "a directory");
    make_socket(P("sock"));
    readers_refuse(P("sock"), "a socket");

    /* The MNIST loader: the labels file is a FIFO. */
    char want[600];
    snprintf(want, sizeof want, "%s/train-labels-idx1-ubyte: is a FIFO (named pipe), not a "
             "regular file", dir);
    assert_int_equal(mkfifo(P("train-labels-idx1-ubyte"), 0600), 0);
    write_bytes(P("train-images-idx3-ubyte"), "", 0);
    nb_tensor *o[4];
    FAILS_RC(nb_load_mnist(dir, &o[0], &o[1], &o[2], &o[3]), "nb_load_mnist: ", want);
    alarm(0);
}

/* An empty tensor with huge sizes beside the zero (within NB_MAX_NUMEL:
 * the zero is not counted) reads, and prints at once: printing walked its
 * 65535 * 16711680 empty rows (found by fuzz_idx). */
static void test_empty_with_huge_sizes_prints(void **state)
{
    (void)state;
    alarm(20);
    const unsigned char h[16] = {0, 0, 8, 3, 0, 0, 0xff, 0xff, 0, 0xff, 0, 0, 0, 0, 0, 0};
    write_bytes(P("empty.idx"), h, sizeof h);
    nb_tensor *t = nb_read_idx(P("empty.idx"));
    if (!t)
        fail_msg("%s", nb_last_error());
    assert_int_equal(nb_numel(t), 0);
    char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_int_equal(nb_print(t, f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "tensor([], shape=(65535,16711680,0), dtype=f32)"));
    nb_free(t);
    alarm(0);
}

/* ---- saving ---- */

static nb_tensor *w2(double v)
{
    return named(nb_full(NB_F32, NB_SHAPE(2), v), "w");
}

static double load_w(const char *p)
{
    nb_tensor *t = named(nb_zeros(NB_F32, NB_SHAPE(2)), "w");
    int rc = nb_load_safetensors(p, 1, &t);
    double v = rc == 0 ? nb_get(t, NB_AT(1)) : -1;
    nb_free(t);
    return v;
}

static void test_save_refuses_what_is_not_a_file(void **state)
{
    (void)state;
    alarm(20);
    nb_tensor *w = w2(3);
    struct stat st;

    /* A FIFO, a folder, a socket: refused, and left as they were. */
    assert_int_equal(mkfifo(P("fifo"), 0600), 0);
    FAILS_RC(nb_save_safetensors(P("fifo"), 1, &w), "nb_save_safetensors: ", "fifo: is a FIFO "
             "(named pipe), not a regular file: refusing to replace it");
    assert_int_equal(lstat(P("fifo"), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    mkdir(P("folder"), 0700);
    FAILS_RC(nb_save_safetensors(P("folder"), 1, &w), "folder: is a directory, not a regular "
             "file");
    make_socket(P("sock"));
    FAILS_RC(nb_save_safetensors(P("sock"), 1, &w), "sock: is a socket, not a regular file");
    /* A device: a copy of /dev/full's node (as root; never the real one). */
    if (mknod(P("full"), S_IFCHR | 0666, makedev(1, 7)) == 0) {
        FAILS_RC(nb_save_safetensors(P("full"), 1, &w), "full: is a character device, not a "
                 "regular file: refusing to replace it");
        assert_int_equal(lstat(P("full"), &st), 0);
        assert_true(S_ISCHR(st.st_mode));
    }
    FAILS_RC(nb_save_safetensors("", 1, &w), "nb_save_safetensors: the path is empty");
    assert_int_equal(others(NULL), getuid() == 0 ? 4 : 3); /* no temporary left */

    /* A symbolic link to a regular file is followed: the file is replaced,
     * the link stays; one to nothing or to a FIFO is refused. */
    write_bytes(P("real"), "old", 3);
    assert_int_equal(chmod(P("real"), 0640), 0);
    assert_int_equal(symlink("real", P("link")), 0);
    assert_int_equal(nb_save_safetensors(P("link"), 1, &w), 0);
    assert_int_equal(lstat(P("link"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_true(load_w(P("real")) == 3.0);
    assert_int_equal(stat(P("real"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640); /* the file keeps its permissions */
    assert_int_equal(symlink("nowhere", P("dangling")), 0);
    FAILS_RC(nb_save_safetensors(P("dangling"), 1, &w), "dangling: is a symbolic link that "
             "leads nowhere");
    assert_int_equal(symlink("fifo", P("to-fifo")), 0);
    FAILS_RC(nb_save_safetensors(P("to-fifo"), 1, &w), "to-fifo: is a symbolic link to",
             "fifo, which is a FIFO (named pipe), not a regular file");

    /* The temporary name held by something else: a symbolic link (not
     * followed, its target untouched), another file's hard link (not
     * truncated), a folder. A stale temporary file is reused. */
    write_bytes(P("victim"), "precious", 8);
    assert_int_equal(symlink("victim", P("m.nbtmp")), 0);
    FAILS_RC(nb_save_safetensors(P("m"), 1, &w), "nb_save_safetensors: ", "m: cannot create",
             "m.nbtmp: it is a symbolic link");
    unlink(P("m.nbtmp"));
    assert_int_equal(link(P("victim"), P("m.nbtmp")), 0);
    FAILS_RC(nb_save_safetensors(P("m"), 1, &w), "m.nbtmp has other names (hard links)");
    unlink(P("m.nbtmp"));
    assert_int_equal(stat(P("victim"), &st), 0);
    assert_int_equal(st.st_size, 8);
    mkdir(P("m.nbtmp"), 0700);
    FAILS_RC(nb_save_safetensors(P("m"), 1, &w), "m: cannot create", "m.nbtmp");
    rmdir(P("m.nbtmp"));
    write_bytes(P("m.nbtmp"), "a killed save's leftovers, longer than the new file", 51);
    assert_int_equal(nb_save_safetensors(P("m"), 1, &w), 0);
    assert_true(load_w(P("m")) == 3.0);
    assert_int_equal(access(P("m.nbtmp"), F_OK), -1);
    nb_free(w);
    alarm(0);
}

/* Saves killed at random moments: the target is always either absent or a
 * whole file (its checksum verified by a strict load), and at most one
 * temporary file is ever left. */
static void test_killed_saves(void **state)
{
    (void)state;
    enum { RUNS = 250 };
    const char *path = P("m.safetensors");
    nb_tensor *t = named(nb_full(NB_F32, NB_SHAPE(1 << 18), 1.0), "w"); /* 1 MB */
    nb_tensor *back = named(nb_zeros(NB_F32, NB_SHAPE(1 << 18)), "w");
    int most = 0, left = 0, whole = 0;
    srand(8);
    for (int i = 0; i < RUNS; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (float v = 0;; v++) {
                ((float *)nb_data(t))[0] = v;
                nb_save_safetensors(path, 1, &t);
            }
        }
        usleep((useconds_t)(rand() % 8000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        int tmps = others("m.safetensors");
        most = tmps > most ? tmps : most;
        left += tmps > 0;
        if (access(path, F_OK) == 0) {
            if (nb_load_safetensors(path, 1, &back) != 0)
                fail_msg("run %d: %s", i, nb_last_error());
            whole++;
        }
    }
    printf("# %d killed saves: at most %d temporary file at any time (one was there after %d "
           "of them); the target loaded whole after %d\n",
           RUNS, most, left, whole);
    assert_true(most <= 1);
    /* The next save finishes and takes the temporary name with it. */
    assert_int_equal(nb_save_safetensors(path, 1, &t), 0);
    assert_int_equal(others("m.safetensors"), 0);
    nb_free(t);
    nb_free(back);
}

/* Two processes saving the same file at once: every save succeeds (the
 * second waits for the first), the file is one of theirs, whole. */
static void test_concurrent_saves(void **state)
{
    (void)state;
    const char *path = P("m.safetensors");
    pid_t pid[2];
    for (int k = 0; k < 2; k++) {
        pid[k] = fork();
        assert_true(pid[k] >= 0);
        if (pid[k] == 0) {
            nb_tensor *w = w2(k + 1);
            int failed = 0;
            for (int i = 0; i < 40; i++)
                failed += nb_save_safetensors(path, 1, &w) != 0;
            _exit(failed);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status;
        assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    double v = load_w(path);
    assert_true(v == 1.0 || v == 2.0);
    assert_int_equal(others("m.safetensors"), 0);
}

/* ---- gzip ---- */

/* gzip of n bytes at level 9 into *out (malloc'ed); its length. */
static size_t gzip_of(const unsigned char *p, size_t n, unsigned char **out)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    *out = malloc(cap);
    assert_non_null(*out);
    z.next_in = (unsigned char *)p;
    z.avail_in = (uInt)n;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = z.total_out;
    deflateEnd(&z);
    return len;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (24 - 8 * k));
}

static void test_gzip_limit(void **state)
{
    (void)state;
    /* 1 MB of zeros: 1000 times smaller gzipped, but within the 64 MiB
     * every gzip file may expand to (NB_GZIP_FREE_BYTES). */
    size_t n = (size_t)1 << 20;
    unsigned char *raw = calloc(8 + n, 1), *gz;
    assert_non_null(raw);
    raw[2] = 0x08, raw[3] = 1;
    put_be32(raw + 4, (uint32_t)n);
    size_t len = gzip_of(raw, 8 + n, &gz);
    assert_true(len < 8 + n / 500);
    write_bytes(P("zeros.gz"), gz, len);
    free(gz);
    nb_tensor *t = nb_read_idx(P("zeros.gz"));
    if (!t)
        fail_msg("%s", nb_last_error());
    assert_int_equal(nb_numel(t), (int64_t)n);
    nb_free(t);

    /* Beyond 64 MiB: refused from the header, before decompressing. */
    put_be32(raw + 4, (uint32_t)(NB_GZIP_FREE_BYTES + 1));
    len = gzip_of(raw, 8 + n, &gz);
    write_bytes(P("bomb.gz"), gz, len);
    free(gz);
    char want[300];
    snprintf(want, sizeof want, "bomb.gz: u8 (%lld,) needs %lld bytes, more than the %lld a "
             "gzipped file of %zu bytes may expand to (NB_GZIP_MAX_RATIO: %d times its size, "
             "at least %lld): gunzip it first",
             (long long)NB_GZIP_FREE_BYTES + 1, (long long)NB_GZIP_FREE_BYTES + 1,
             (long long)NB_GZIP_FREE_BYTES, len, NB_GZIP_MAX_RATIO,
             (long long)NB_GZIP_FREE_BYTES);
    FAILS(nb_read_idx(P("bomb.gz")), "nb_read_idx: ", want);
    /* Plain, the same header is just a short file. */
    write_bytes(P("bomb"), raw, 8 + 1000);
    FAILS(nb_read_idx(P("bomb")), "nb_read_idx: ", "bomb: truncated data");

    /* A larger file may expand NB_GZIP_MAX_RATIO times its size: 600 KB of
     * noise (incompressible) claiming a little more than that. */
    size_t noise = 600 << 10;
    for (size_t i = 0; i < noise; i++)
        raw[8 + i] = (unsigned char)(rand() >> 7);
    len = gzip_of(raw, 8 + noise, &gz);
    free(gz);
    uint32_t claim = (uint32_t)(len * NB_GZIP_MAX_RATIO + 4096);
    put_be32(raw + 4, claim);
    len = gzip_of(raw, 8 + noise, &gz);
    write_bytes(P("big.gz"), gz, len);
    free(gz);
    snprintf(want, sizeof want, "needs %lu bytes, more than the %lld a gzipped file of %zu "
             "bytes may expand to",
             (unsigned long)claim, (long long)len * NB_GZIP_MAX_RATIO, len);
    FAILS(nb_read_idx(P("big.gz")), "nb_read_idx: ", "big.gz: ", want);
    /* Within it, the same file is read (and found short). */
    put_be32(raw + 4, (uint32_t)(len * NB_GZIP_MAX_RATIO - 4096));
    len = gzip_of(raw, 8 + noise, &gz);
    write_bytes(P("big.gz"), gz, len);
    free(gz);
    FAILS(nb_read_idx(P("big.gz")), "nb_read_idx: ", "big.gz: truncated data");
    free(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_readers_refuse_what_is_not_a_file, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_empty_with_huge_sizes_prints, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_save_refuses_what_is_not_a_file, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_killed_saves, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_concurrent_saves, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_gzip_limit, setup_dir, teardown_dir),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
