/* A small strict JSON reader (RFC 8259) for the headers of file formats,
 * and the writer of JSON string literals. Private to src/io.
 *
 * The reader walks a text in place: strings are decoded where they stand
 * (escapes resolved, NUL-terminated), so a decoded string points into the
 * text and lives as long as it does. Every failure sets the error
 *   "<fn>: <path>: corrupt <doc> (JSON) at byte <i>: <what>"
 * and returns -1. A caller reads a document by its own grammar with these
 * pieces; an object, for instance:
 *
 *   int more = nb__json_open(j, '{');
 *   while (more == 1) {
 *       char *key;
 *       if (nb__json_string(j, &key) || nb__json_expect(j, ':') || <value>)
 *           return -1;
 *       more = nb__json_more(j, '}');
 *   }
 *   if (more < 0) return -1; */
#ifndef NABLA_IO_JSON_H
#define NABLA_IO_JSON_H

#include "internal.h"

typedef struct nb_json {
    char *s;      /* the text, NUL-terminated at n */
    size_t n, i;  /* its length; the cursor */
    const char *fn, *path, *doc; /* for messages: "nb_load_safetensors", the file, "header" */
} nb_json;

/* Offset of the first byte of s[0..n) that does not begin a well-formed
 * UTF-8 sequence (nb__utf8_len), or n when all of it is well-formed. */
size_t nb__json_utf8_prefix(const char *s, size_t n);

/* Starts reading s[0..n) (NUL-terminated at n); the text must be UTF-8.
 * 0 or -1. */
int nb__json_init(nb_json *j, char *s, size_t n, const char *fn, const char *path,
                  const char *doc);
/* Sets the error at the cursor (printf-style what); returns -1. */
int nb__json_fail(nb_json *j, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Skips whitespace; the next character (not consumed), or 0 at the end. */
char nb__json_peek(nb_json *j);
/* Skips whitespace, then consumes c. 0 or -1. */
int nb__json_expect(nb_json *j, char c);
/* Consumes open ('{' or '['): 1 when a member follows, 0 when the matching
 * close follows at once (consumed too), -1 on error. */
int nb__json_open(nb_json *j, char open);
/* After a member: 1 on ',' (consumed), 0 on close (consumed), -1 otherwise. */
int nb__json_more(nb_json *j, char close);
/* A string, decoded in place; *out points into the text. \u0000 is refused
 * (the result is a C string). 0 or -1. */
int nb__json_string(nb_json *j, char **out);
/* A whole number in [0, 2^63) in strict JSON form (no sign, fraction,
 * exponent or leading zero). 0 or -1. */
int nb__json_uint(nb_json *j, uint64_t *v);
/* Any value, checked and skipped (nested at most 64 deep). 0 or -1. */
int nb__json_skip(nb_json *j);
/* Only whitespace is left. 0 or -1. */
int nb__json_end(nb_json *j);

/* Appends s as a JSON string literal: quotes, backslashes and control
 * characters escaped (as serde_json does), other bytes as they are. */
void nb__json_put_string(nb_sbuf *b, const char *s);

#endif
