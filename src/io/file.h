/* Files from outside: opening one to read without being fooled by what is
 * at the path, and replacing one by saving. Private to src/io.
 *
 * Reading: a FIFO, a device or a folder at a path a reader is given would
 * block for ever (a FIFO without a writer), never end (/dev/zero) or fail
 * in a confusing way. nb__open_read opens without blocking, checks the
 * type on the open file (no race with a rename), refuses anything but a
 * regular file, then turns blocking back on for the reads.
 *
 * Saving: nb__save_open checks what is at the path before writing
 * anything: nothing, or a regular file, or a symbolic link leading to one
 * (which is followed: the file it leads to is replaced, the link stays).
 * Anything else (a device such as /dev/full, a FIFO, a folder, a socket)
 * is refused. The new contents go to "<file>.nbtmp" in the same folder,
 * which nb__save_commit flushes to disk and renames over the file: the file
 * holds either its old contents or the whole new ones. The temporary name
 * is one per file, locked (flock) while a save writes it: a second save of
 * the same file waits for the first, and a save killed half-way leaves at
 * most that one file behind, which the next save of the same file reuses
 * (so stale temporaries never pile up). */
#ifndef NABLA_IO_FILE_H
#define NABLA_IO_FILE_H

#include "internal.h"

#include <stdio.h>
#include <sys/stat.h>

/* "a FIFO (named pipe)", "a directory", ... for messages. */
const char *nb__file_type(mode_t mode);

/* Opens path to read: a blocking descriptor of a regular file, with *st
 * its status (st may be NULL). -1 with "fn: path: cannot open: <why>" or
 * "fn: path: is <type>, not a regular file". */
int nb__open_read(const char *fn, const char *path, struct stat *st);

/* A save in progress. */
typedef struct nb_save {
    const char *fn, *path;
    char *target; /* the file replaced: path, or where its symbolic link leads */
    char *tmp;    /* "<target>.nbtmp" */
    int lock;     /* descriptor of tmp holding the flock; -1 when closed */
    FILE *f;      /* the stream the caller writes */
} nb_save;

/* Checks path and opens its temporary file for writing (truncated): s->f.
 * 0, or -1 with an error naming fn and path (and nothing changed). */
int nb__save_open(nb_save *s, const char *fn, const char *path);
/* Flushes, syncs and closes s->f, then renames the temporary file over the
 * target. 0, or -1 with an error (the temporary file removed, the target
 * untouched). Frees s either way. */
int nb__save_commit(nb_save *s);
/* Gives up: closes and removes the temporary file, frees s. The error (if
 * any) is the caller's to set, before or after. */
void nb__save_abort(nb_save *s);

#endif
