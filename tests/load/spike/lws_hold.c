/*
 * Spike for issue 14: how much a libwebsockets server costs per idle,
 * upgraded WebSocket. Not built by meson (libwebsockets is not a
 * dependency); build and measure with:
 *
 *   cc -O2 tests/load/spike/lws_hold.c -o lws-hold $(pkg-config --cflags --libs libwebsockets)
 *   node tests/load/hold.js --raw --server ./lws-hold --connections 19000
 *
 * It accepts WebSockets on /connection/websocket (any path, in fact),
 * keeps a small per-session struct, and answers each text message with
 * the same text, which is all hold.js --raw needs.
 * SPDX-License-Identifier: MIT
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

struct session {
    int messages;
};

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    struct session *s = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        s->messages = 0;
        break;
    case LWS_CALLBACK_RECEIVE: {
        unsigned char buf[LWS_PRE + 512];
        if (len > 512) {
            return -1;
        }
        s->messages++;
        memcpy(buf + LWS_PRE, in, len);
        if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len) {
            return -1;
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"spike", callback, sizeof(struct session), 512, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--port") == 0) {
            port = atoi(argv[i + 1]);
        }
    }
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    struct lws_context *ctx = lws_create_context(&info);
    if (ctx == NULL) {
        fprintf(stderr, "lws_create_context failed\n");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    while (!stop && lws_service(ctx, 0) >= 0) {
    }
    lws_context_destroy(ctx);
    return 0;
}
