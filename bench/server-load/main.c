/*
 * server-load: the server workload's generator (bench/server-load/README.md).
 *
 *   server-load run --proto centrifugo|socketio --port PORT... -n N [options]
 *
 * Several --port: servers sharing presence, connection i to the
 * (i mod count)-th.
 *   server-load merge [--strict] FILE...
 *
 * "run" prints its figures as "key value" lines on stdout (progress on
 * stderr); "merge" adds up the outputs of several shards of one run.
 * With --strict the exit status is 1 when a correctness figure is not 0
 * (lost, duplicated or unexpected pushes, ghosts, missing members,
 * channels not empty at the end, slots given up, error replies, messages
 * not understood, connections the server closed).
 * SPDX-License-Identifier: MIT
 */
#include "driver.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: server-load run --proto centrifugo|socketio --port PORT... -n N\n"
            "         [--host 127.0.0.1] [--group 10] [--lobby 1000]\n"
            "         [--churn-percent 1] [--churn-seconds 60] [--plateau-seconds 10]\n"
            "         [--presence-rate 200] [--stats-rate 200] [--check-groups 1000]\n"
            "         [--check-lobbies 10] [--in-flight 2000] [--sources 16]\n"
            "         [--shard I/K --sync DIR] [--secret S] [--server-pid PID]...\n"
            "         [--seed S] [--subscribe-after-connect] [--strict]\n"
            "       server-load merge [--strict] FILE...\n");
}

static bool number(const char *text, double min, double max, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= min && v <= max)) {
        return false;
    }
    *out = v;
    return true;
}

static bool failed(const lg_stats *st)
{
    return st->lost || st->dup || st->unexpected || st->ghosts || st->missing ||
           st->probe_nonzero || st->probe_failed || st->abandoned || st->call_errors ||
           st->server_closes || st->bad_messages;
}

static int parse_run(int argc, char **argv, lg_options *o, bool *strict)
{
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->group_size = 10;
    o->lobby_size = 1000;
    o->churn_percent = 1;
    o->churn_seconds = 60;
    o->plateau_seconds = 10;
    o->presence_rate = 200;
    o->stats_rate = 200;
    o->check_groups = 1000;
    o->check_lobbies = 10;
    o->max_in_flight = LG_MAX_IN_FLIGHT_DEFAULT;
    o->sources = 16;
    o->shards = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d = 0;
        if (strcmp(a, "--strict") == 0) {
            *strict = true;
            continue;
        }
        if (strcmp(a, "--subscribe-after-connect") == 0) {
            o->subscribe_after_connect = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "server-load: %s needs a value\n", a);
            return -1;
        }
        i++;
        bool ok = true;
        if (strcmp(a, "--proto") == 0) {
            if (strcmp(v, "centrifugo") == 0) {
                o->proto = &lg_proto_centrifugo;
            } else if (strcmp(v, "socketio") == 0) {
                o->proto = &lg_proto_socketio;
            } else {
                ok = false;
            }
        } else if (strcmp(a, "--host") == 0) {
            ok = strlen(v) < sizeof o->host;
            snprintf(o->host, sizeof o->host, "%s", v);
        } else if (strcmp(a, "--port") == 0) {
            ok = o->nports < LG_MAX_SERVER_PIDS && number(v, 1, 65535, &d);
            if (ok) {
                o->ports[o->nports++] = (int)d;
            }
        } else if (strcmp(a, "-n") == 0) {
            ok = number(v, 1, 10000000, &d);
            o->n = (uint32_t)d;
        } else if (strcmp(a, "--group") == 0) {
            ok = number(v, 1, 100000, &d);
            o->group_size = (uint32_t)d;
        } else if (strcmp(a, "--lobby") == 0) {
            ok = number(v, 1, 1000000, &d);
            o->lobby_size = (uint32_t)d;
        } else if (strcmp(a, "--churn-percent") == 0) {
            ok = number(v, 0, 100, &o->churn_percent);
        } else if (strcmp(a, "--churn-seconds") == 0) {
            ok = number(v, 0, 86400, &o->churn_seconds);
        } else if (strcmp(a, "--plateau-seconds") == 0) {
            ok = number(v, 0, 86400, &o->plateau_seconds);
        } else if (strcmp(a, "--presence-rate") == 0) {
            ok = number(v, 0, 1e6, &o->presence_rate);
        } else if (strcmp(a, "--stats-rate") == 0) {
            ok = number(v, 0, 1e6, &o->stats_rate);
        } else if (strcmp(a, "--check-groups") == 0) {
            ok = number(v, 0, 1e7, &d);
            o->check_groups = (uint32_t)d;
        } else if (strcmp(a, "--check-lobbies") == 0) {
            ok = number(v, 0, 1e7, &d);
            o->check_lobbies = (uint32_t)d;
        } else if (strcmp(a, "--in-flight") == 0) {
            ok = number(v, 1, 1e6, &d);
            o->max_in_flight = (uint32_t)d;
        } else if (strcmp(a, "--sources") == 0) {
            ok = number(v, 1, 250, &d);
            o->sources = (uint32_t)d;
        } else if (strcmp(a, "--shard") == 0) {
            unsigned s = 0;
            unsigned k = 0;
            ok = sscanf(v, "%u/%u", &s, &k) == 2 && k >= 1 && s < k;
            o->shard = s;
            o->shards = k;
        } else if (strcmp(a, "--sync") == 0) {
            ok = strlen(v) < sizeof o->sync_dir;
            snprintf(o->sync_dir, sizeof o->sync_dir, "%s", v);
        } else if (strcmp(a, "--secret") == 0) {
            ok = strlen(v) < sizeof o->secret;
            snprintf(o->secret, sizeof o->secret, "%s", v);
        } else if (strcmp(a, "--server-pid") == 0) {
            ok = o->nserver_pids < LG_MAX_SERVER_PIDS && number(v, 1, 1e9, &d);
            if (ok) {
                o->server_pids[o->nserver_pids++] = (int)d;
            }
        } else if (strcmp(a, "--seed") == 0) {
            ok = number(v, 0, 1e15, &d);
            o->seed = (uint64_t)d;
        } else {
            fprintf(stderr, "server-load: unknown option %s\n", a);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "server-load: bad value for %s: %s\n", a, v);
            return -1;
        }
    }
    if (o->proto == NULL || o->nports == 0 || o->n == 0) {
        usage();
        return -1;
    }
    if (o->lobby_size % o->group_size != 0) {
        fprintf(stderr, "server-load: --lobby must be a multiple of --group\n");
        return -1;
    }
    return 0;
}

static int run(int argc, char **argv)
{
    lg_options opt;
    bool strict = false;
    if (parse_run(argc, argv, &opt, &strict) != 0) {
        return 2;
    }
    lg_stats *st = calloc(1, sizeof *st);
    uint32_t count = 0;
    if (st == NULL || lg_driver_run(&opt, st, &count) != 0) {
        fprintf(stderr, "server-load: out of memory\n");
        free(st);
        return 2;
    }
    lg_report_print(stdout, opt.proto->name, opt.n, count, st);
    int rc = strict && failed(st) ? 1 : 0;
    free(st);
    return rc;
}

static int merge(int argc, char **argv)
{
    bool strict = false;
    lg_stats *st = calloc(1, sizeof *st);
    uint64_t count = 0;
    char proto[64] = "";
    uint32_t n = 0;
    bool first = true;
    if (st == NULL) {
        return 2;
    }
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--strict") == 0) {
            strict = true;
            continue;
        }
        FILE *f = fopen(argv[i], "r");
        if (f == NULL || !lg_report_merge(f, st, &count, first, proto, sizeof proto, &n)) {
            fprintf(stderr, "server-load: %s is not a server-load report\n", argv[i]);
            if (f != NULL) {
                fclose(f);
            }
            free(st);
            return 2;
        }
        fclose(f);
        first = false;
    }
    if (first) {
        usage();
        free(st);
        return 2;
    }
    lg_report_print(stdout, proto, n, count, st);
    int rc = strict && failed(st) ? 1 : 0;
    free(st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "run") == 0) {
        return run(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "merge") == 0) {
        return merge(argc - 2, argv + 2);
    }
    usage();
    return 2;
}
