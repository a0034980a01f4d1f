/* The presence server's fuzz targets, callable from libFuzzer
 * (libfuzzer_server.c) and from server_replay.c.
 * SPDX-License-Identifier: MIT */
#ifndef PS_SERVER_FUZZ_H
#define PS_SERVER_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Frames and commands from fake clients (server_frames.c). */
int ps_fuzz_server_frames(const uint8_t *data, size_t size);

/* Arbitrary bytes as the JSON config (server_config.c). */
int ps_fuzz_server_config(const uint8_t *data, size_t size);

/* Arbitrary bytes as a client's WebSocket stream (server_ws_frames.c). */
int ps_fuzz_server_ws_frames(const uint8_t *data, size_t size);

/* Arbitrary bytes from an HTTP client on a real connection
 * (server_http.c). */
int ps_fuzz_server_http(const uint8_t *data, size_t size);

#endif
