/*
 * Allocation hooks of the presence server. See mem.h.
 * SPDX-License-Identifier: MIT
 */
#include "mem.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t size, void *user_data)
{
    (void)user_data;
    return malloc(size);
}

static void *libc_realloc(void *ptr, size_t size, void *user_data)
{
    (void)user_data;
    return realloc(ptr, size);
}

static void libc_free(void *ptr, void *user_data)
{
    (void)user_data;
    free(ptr);
}

static const ps_mem_hooks libc_hooks = {libc_malloc, libc_realloc, libc_free, NULL};
static ps_mem_hooks hooks = {libc_malloc, libc_realloc, libc_free, NULL};
static _Thread_local unsigned long failures;

void ps_mem_set_hooks(const ps_mem_hooks *h)
{
    hooks = h != NULL ? *h : libc_hooks;
}

unsigned long ps_mem_failures(void)
{
    return failures;
}

void *ps_malloc(size_t size)
{
    void *p = hooks.malloc_fn(size ? size : 1, hooks.user_data);
    failures += p == NULL;
    return p;
}

void *ps_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        failures++;
        return NULL;
    }
    void *p = ps_malloc(count * size);
    if (p != NULL) {
        memset(p, 0, count * size);
    }
    return p;
}

void *ps_realloc(void *ptr, size_t size)
{
    void *p = hooks.realloc_fn(ptr, size ? size : 1, hooks.user_data);
    failures += p == NULL;
    return p;
}

void ps_free(void *ptr)
{
    if (ptr != NULL) {
        hooks.free_fn(ptr, hooks.user_data);
    }
}

char *ps_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = ps_malloc(n);
    if (copy != NULL) {
        memcpy(copy, s, n);
    }
    return copy;
}

static void *jansson_malloc(size_t size)
{
    return ps_malloc(size);
}

void ps_mem_install_jansson(void)
{
    json_set_alloc_funcs(jansson_malloc, ps_free);
}

json_t *ps_json_loadb(const char *text, size_t len, size_t flags,
                      json_error_t *error, bool *nomem)
{
    unsigned long before = failures;
    json_t *value = json_loadb(text, len, flags, error);
    *nomem = failures != before;
    if (*nomem) {
        json_decref(value);
        return NULL;
    }
    return value;
}

char *ps_json_dumps(const json_t *value, size_t flags)
{
    unsigned long before = failures;
    char *text = json_dumps(value, flags);
    if (failures != before) {
        ps_free(text);
        return NULL;
    }
    return text;
}

static void *registry_malloc(size_t size, void *user_data)
{
    (void)user_data;
    return ps_malloc(size);
}

static void *registry_realloc(void *ptr, size_t old_size, size_t new_size,
                              void *user_data)
{
    (void)old_size;
    (void)user_data;
    return ps_realloc(ptr, new_size);
}

static void registry_free(void *ptr, size_t size, void *user_data)
{
    (void)size;
    (void)user_data;
    ps_free(ptr);
}

void ps_mem_presence_allocator(presence_allocator *out)
{
    out->malloc_fn = registry_malloc;
    out->realloc_fn = registry_realloc;
    out->free_fn = registry_free;
    out->user_data = NULL;
}
