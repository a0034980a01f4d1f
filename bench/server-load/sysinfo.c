/*
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include "sysinfo.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The number after "@p key:" in /proc/PID/status, or -1. */
static long long status_field(int pid, const char *key)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    char line[256];
    long long value = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            sscanf(line + klen + 1, "%lld", &value);
            break;
        }
    }
    fclose(f);
    return value;
}

static long long sum_field(const int *pids, unsigned n, const char *key)
{
    long long total = 0;
    for (unsigned i = 0; i < n; i++) {
        long long v = status_field(pids[i], key);
        if (v < 0) {
            return -1;
        }
        total += v;
    }
    return total;
}

long long lg_sys_rss_kb(const int *pids, unsigned n)
{
    return sum_field(pids, n, "VmRSS");
}

long long lg_sys_threads(const int *pids, unsigned n)
{
    return sum_field(pids, n, "Threads");
}

double lg_sys_cpu_s(const int *pids, unsigned n)
{
    double total = 0;
    long ticks = sysconf(_SC_CLK_TCK);
    for (unsigned i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        char text[1024];
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        /* Fields 14 and 15 (utime, stime) come after the ")" of the name. */
        char *p = strrchr(text, ')');
        unsigned long long utime = 0;
        unsigned long long stime = 0;
        if (p != NULL &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                   &utime, &stime) == 2) {
            total += (double)(utime + stime) / (double)ticks;
        }
    }
    return total;
}

double lg_sys_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
