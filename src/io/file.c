/* Opening files to read and replacing files by saving (file.h). */
#define _DEFAULT_SOURCE /* flock, realpath with NULL */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

const char *nb__file_type(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISLNK(mode))
        return "a symbolic link";
    return "of an unknown file type";
}

int nb__open_read(const char *fn, const char *path, struct stat *st)
{
    struct stat own;
    if (!st)
        st = &own;
    /* O_NONBLOCK: opening a FIFO without a writer returns at once instead
     * of waiting for one; the type is then checked on what was opened. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        /* A socket cannot be opened at all (ENXIO): say what it is. */
        if (e == ENXIO && stat(path, st) == 0 && !S_ISREG(st->st_mode))
            return nb__error_code(NB_ERR_IO, "%s: %s: is %s, not a regular file", fn, path,
                             nb__file_type(st->st_mode));
        return nb__error_code(NB_ERR_IO, "%s: %s: cannot open: %s", fn, path, strerror(e));
    }
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return nb__error_code(NB_ERR_IO, "%s: %s: cannot stat: %s", fn, path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return nb__error_code(NB_ERR_IO, "%s: %s: is %s, not a regular file", fn, path,
                         nb__file_type(st->st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return nb__error_code(NB_ERR_IO, "%s: %s: cannot open: %s", fn, path, strerror(e));
    }
    return fd;
}

/* ---- saving ---- */

static char *dup_str(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    char *p = nb__alloc(a + b + 1);
    if (p) {
        memcpy(p, s, a);
        memcpy(p + a, suffix, b + 1);
    }
    return p;
}

static void save_free(nb_save *s)
{
    if (s->f)
        fclose(s->f);
    if (s->lock >= 0)
        close(s->lock);
    nb__free(s->target);
    nb__free(s->tmp);
    s->f = NULL;
    s->lock = -1;
    s->target = s->tmp = NULL;
}

/* What path leads to: *target (allocated) is the file to replace, *st its
 * status when it exists (*exists). 0 or -1 with an error. */
static int resolve_target(nb_save *s, char **target, struct stat *st, bool *exists)
{
    *exists = false;
    *target = NULL;
    if (!s->path[0])
        return nb__error("%s: the path is empty", s->fn);
    if (lstat(s->path, st) != 0) {
        if (errno != ENOENT)
            return nb__error_code(NB_ERR_IO, "%s: %s: cannot save there: %s", s->fn, s->path, strerror(errno));
        *target = dup_str(s->path, ""); /* a new file (its folder is checked on creation) */
        return *target ? 0 : -1;
    }
    if (S_ISLNK(st->st_mode)) {
        char *real = realpath(s->path, NULL);
        if (!real)
            return nb__error_code(NB_ERR_IO, "%s: %s: is a symbolic link that leads nowhere (%s): nothing was "
                             "saved",
                             s->fn, s->path, strerror(errno));
        *target = dup_str(real, "");
        free(real);
        if (!*target)
            return -1;
        if (stat(*target, st) != 0)
            return nb__error_code(NB_ERR_IO, "%s: %s: cannot save to %s, where its symbolic link leads: %s",
                             s->fn, s->path, *target, strerror(errno));
        if (!S_ISREG(st->st_mode))
            return nb__error_code(NB_ERR_IO, "%s: %s: is a symbolic link to %s, which is %s, not a regular "
                             "file: refusing to replace it",
                             s->fn, s->path, *target, nb__file_type(st->st_mode));
        *exists = true;
        return 0;
    }
    if (!S_ISREG(st->st_mode))
        return nb__error_code(NB_ERR_IO, "%s: %s: is %s, not a regular file: refusing to replace it", s->fn,
                         s->path, nb__file_type(st->st_mode));
    *exists = true;
    *target = dup_str(s->path, "");
    return *target ? 0 : -1;
}

int nb__save_open(nb_save *s, const char *fn, const char *path)
{
    *s = (nb_save){.fn = fn, .path = path, .lock = -1};
    struct stat tst;
    bool exists, locked = false;
    if (resolve_target(s, &s->target, &tst, &exists) < 0)
        goto fail;
    if (!(s->tmp = dup_str(s->target, ".nbtmp")))
        goto fail;
    /* Open (or create) the temporary file and lock it. The name may still
     * hold a file a killed save left: it is reused. After the lock is
     * granted the name must still lead to what was opened: a save that
     * held the lock before renames or removes the file, and then this
     * descriptor is not the temporary file any more. */
    for (int tries = 0;; tries++) {
        int fd = open(s->tmp, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
                      0666);
        if (fd < 0) {
            nb__error_code(NB_ERR_IO, "%s: %s: cannot create %s: %s", fn, path, s->tmp,
                      errno == ELOOP ? "it is a symbolic link" : strerror(errno));
            goto fail;
        }
        s->lock = fd;
        struct stat a, b;
        if (fstat(fd, &a) != 0) {
            nb__error_code(NB_ERR_IO, "%s: %s: cannot stat %s: %s", fn, path, s->tmp, strerror(errno));
            goto fail;
        }
        if (!S_ISREG(a.st_mode)) {
            nb__error_code(NB_ERR_IO, "%s: %s: %s is %s, not nabla's temporary file: remove it", fn, path, s->tmp,
                      nb__file_type(a.st_mode));
            goto fail;
        }
        int rc;
        while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
            ;
        if (rc != 0) {
            nb__error_code(NB_ERR_IO, "%s: %s: cannot lock %s: %s", fn, path, s->tmp, strerror(errno));
            goto fail;
        }
        if (lstat(s->tmp, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            locked = true;
            break;
        }
        close(fd);
        s->lock = -1;
        if (tries == 100) {
            nb__error_code(NB_ERR_IO, "%s: %s: %s keeps changing under other saves", fn, path, s->tmp);
            goto fail;
        }
    }
    /* Refuse a hard link to some other file: truncating would clobber it. */
    struct stat a;
    if (fstat(s->lock, &a) != 0 || a.st_nlink != 1) {
        locked = false;
        nb__error_code(NB_ERR_IO, "%s: %s: %s has other names (hard links), not nabla's temporary file: remove "
                  "it",
                  fn, path, s->tmp);
        goto fail;
    }
    int flags = fcntl(s->lock, F_GETFL);
    if (flags < 0 || fcntl(s->lock, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
        ftruncate(s->lock, 0) != 0) {
        nb__error_code(NB_ERR_IO, "%s: %s: cannot prepare %s: %s", fn, path, s->tmp, strerror(errno));
        goto fail;
    }
    if (exists)
        (void)fchmod(s->lock, tst.st_mode & 07777); /* the file keeps its permissions */
    /* The stream writes through a second descriptor of the same open file:
     * closing it keeps the lock, which is released only after the rename. */
    int wfd = dup(s->lock);
    if (wfd < 0 || !(s->f = fdopen(wfd, "wb"))) {
        nb__error_code(NB_ERR_IO, "%s: %s: cannot open %s: %s", fn, path, s->tmp, strerror(errno));
        if (wfd >= 0)
            close(wfd);
        goto fail;
    }
    return 0;
fail:
    /* A temporary file this call holds the lock of, and may use, is
     * removed; one it could not use is left alone. */
    if (locked) {
        struct stat a;
        if (fstat(s->lock, &a) == 0 && S_ISREG(a.st_mode) && a.st_nlink == 1)
            unlink(s->tmp);
    }
    save_free(s);
    return -1;
}

void nb__save_abort(nb_save *s)
{
    if (s->tmp && s->lock >= 0)
        unlink(s->tmp); /* still holding the lock: nobody else writes it */
    save_free(s);
}

/* The folder holding path, allocated; NULL with an error. */
static char *parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == path ? dup_str("/", "") : slash ? dup_str(path, "") : dup_str(".", "");
    if (dir && slash && slash != path)
        dir[slash - path] = '\0';
    return dir;
}

/* Makes a rename in dir durable: fsync of the folder (best effort). */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int nb__save_commit(nb_save *s)
{
    /* The folder's name first: once the file is renamed nothing may fail. */
    char *dir = parent_of(s->target);
    if (!dir) {
        nb__name_error(s->fn);
        nb__save_abort(s);
        return -1;
    }
    const char *step = "writing";
    int err = 0;
    if (fflush(s->f) != 0)
        goto fail;
    step = "syncing";
    if (fsync(fileno(s->f)) != 0)
        goto fail;
    step = "closing";
    int rc = fclose(s->f);
    s->f = NULL;
    if (rc != 0)
        goto fail;
    step = "renaming";
    if (rename(s->tmp, s->target) != 0)
        goto fail;
    sync_dir(dir);
    nb__free(dir);
    save_free(s);
    return 0;
fail:
    err = errno;
    nb__free(dir);
    nb__error_code(NB_ERR_IO, "%s: %s: %s %s failed: %s", s->fn, s->path, step, s->tmp, strerror(err));
    nb__save_abort(s);
    return -1;
}
