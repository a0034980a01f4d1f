/*
 * Memory for the presence server: every allocation of the server, of
 * jansson and of libpresence goes through these functions, so that one
 * set of hooks can watch or fail them (the allocation-failure tests and
 * the frame fuzzer do). The default hooks are malloc/realloc/free.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_MEM_H
#define PS_MEM_H

#include <jansson.h>
#include <presence.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct ps_mem_hooks {
    void *(*malloc_fn)(size_t size, void *user_data);
    void *(*realloc_fn)(void *ptr, size_t size, void *user_data);
    void (*free_fn)(void *ptr, void *user_data);
    void *user_data;
} ps_mem_hooks;

/** Replace the hooks (NULL restores malloc/realloc/free). Not thread-safe:
 *  call it before any other thread allocates, or between tests. The hooks
 *  must free what libc's malloc returned and the other way round, since
 *  blocks may cross an exchange of hooks. */
void ps_mem_set_hooks(const ps_mem_hooks *hooks);

/** Route jansson's allocations through the hooks (process-wide). */
void ps_mem_install_jansson(void);

/** An allocator for libpresence's registry that uses the hooks. */
void ps_mem_presence_allocator(presence_allocator *out);

void *ps_malloc(size_t size);
void *ps_calloc(size_t count, size_t size);
void *ps_realloc(void *ptr, size_t size);
void ps_free(void *ptr);
char *ps_strdup(const char *s);

/** How many allocations have failed on the calling thread so far. A call
 *  into a library that cannot say "out of memory" (libjwt) compares this
 *  before and after, so that a failed allocation is not taken for bad
 *  input. */
unsigned long ps_mem_failures(void);

/**
 * json_loadb() that memory running out cannot fool: jansson 2.14's lexer
 * drops the characters of a string whose buffer cannot grow, and goes on
 * (a token would come out truncated), and it does not always report a
 * failed allocation as such. Any allocation failure during the parse gives
 * NULL with *nomem set; otherwise as json_loadb() (*nomem false).
 */
json_t *ps_json_loadb(const char *text, size_t len, size_t flags,
                      json_error_t *error, bool *nomem);

/** json_dumps() with the same guard: jansson 2.14 can leave out part of
 *  its output when an allocation fails, and still return text. NULL if
 *  any allocation failed; the text is freed with ps_free(). */
char *ps_json_dumps(const json_t *value, size_t flags);

#endif
