/* What the fuzz targets share: the input as a file a reader can open by
 * path. The bytes go into one memfd (no disk I/O per input), opened by the
 * readers as /proc/self/fd/<n>, which the kernel reports as a regular
 * file, so the whole public path runs, nb__open_read included. Without
 * memfd or /proc, a temporary file in $TMPDIR (or /tmp) is used instead.
 *
 * Every failure must leave a message that starts with the public function
 * called and names the path (nabla's error rule); fuzz_check_error aborts,
 * which libFuzzer reports as a crash, when one does not. */
#ifndef NABLA_FUZZ_H
#define NABLA_FUZZ_H

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nabla/nabla.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_fd = -1;
static char fuzz_name[4096];

/* A path whose file holds data[0..size). */
static const char *fuzz_file(const uint8_t *data, size_t size)
{
    if (fuzz_fd < 0) {
        fuzz_fd = memfd_create("nabla-fuzz", MFD_CLOEXEC);
        if (fuzz_fd >= 0) {
            snprintf(fuzz_name, sizeof fuzz_name, "/proc/self/fd/%d", fuzz_fd);
            int probe = open(fuzz_name, O_RDONLY | O_CLOEXEC);
            if (probe < 0) {
                close(fuzz_fd);
                fuzz_fd = -1;
            } else {
                close(probe);
            }
        }
        if (fuzz_fd < 0) {
            const char *tmp = getenv("TMPDIR");
            snprintf(fuzz_name, sizeof fuzz_name, "%s/nabla-fuzz-XXXXXX", tmp ? tmp : "/tmp");
            fuzz_fd = mkstemp(fuzz_name);
            if (fuzz_fd < 0) {
                perror("fuzz: no file to write the input to");
                abort();
            }
        }
    }
    if (ftruncate(fuzz_fd, 0) != 0 ||
        (size && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz: writing the input");
        abort();
    }
    return fuzz_name;
}

/* After a failed call of fn on path: the message is there, starts with
 * "fn: " and names path. */
static void fuzz_check_error(const char *fn, const char *path)
{
    const char *msg = nb_last_error();
    size_t k = strlen(fn);
    if (!msg || strncmp(msg, fn, k) != 0 || strncmp(msg + k, ": ", 2) != 0 ||
        !strstr(msg, path)) {
        fprintf(stderr, "fuzz: %s failed with the message \"%s\"\n", fn, msg ? msg : "(none)");
        abort();
    }
    nb_clear_error();
}

#endif
