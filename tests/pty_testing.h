/* A pseudo-terminal for tests of what nabla draws on a terminal (the
 * progress bar, the summary's colours). Needs posix_openpt: define
 * _XOPEN_SOURCE 700 (or _GNU_SOURCE) before the first include. */
#ifndef NB_PTY_TESTING_H
#define NB_PTY_TESTING_H

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The terminal side, open for writing (isatty holds), and its master in
 * *master; a test fails rather than skips without one. */
static FILE *pty_open(int *master)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY);
    if (*master < 0 || grantpt(*master) || unlockpt(*master))
        fail_msg("no pseudo-terminal (posix_openpt): what is drawn on a terminal cannot be tested");
    FILE *tty = fopen(ptsname(*master), "w");
    assert_non_null(tty);
    assert_true(isatty(fileno(tty)));
    return tty;
}

/* Everything written to the terminal side, once it is closed (reads then
 * end with EIO), into text (NUL-terminated); closes master. */
static size_t pty_drain(int master, char *text, size_t size)
{
    size_t n = 0;
    struct pollfd pf = {master, POLLIN, 0};
    while (n < size - 1 && poll(&pf, 1, 2000) > 0) {
        ssize_t k = read(master, text + n, size - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(master);
    text[n] = '\0';
    return n;
}

#endif
