#!/usr/bin/env python3
"""Writes the seed corpora of the presence server's fuzz targets
(corpus/server_frames, corpus/server_config, corpus/server_http). Run from
fuzz/ after changing a scenario; the files are committed. See
server_frames.c and server_http.c for the formats."""
import hashlib
import json
import os
import struct

TEXT, TEXT_MORE, CONT_MORE, CONT_END, BINARY, PING, PONG, CLOSE, DROP, FAIL, ANSWER = \
    0, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15


def tok(i):
    return b'\x01' + bytes([i])


def rec(slot, action, payload=b''):
    if isinstance(payload, str):
        payload = payload.encode()
    return bytes([slot | (action << 2)]) + struct.pack('<H', len(payload)) + payload


def cmd(obj, token=None):
    text = json.dumps(obj, separators=(',', ':'))
    if token is not None:
        text = text.replace('"@T@"', '"' + '\x00' + '"')
        return text.encode().replace(b'\x00', tok(token))
    return text.encode()


def lines(*cmds):
    return b'\n'.join(c if isinstance(c, bytes) else cmd(c) for c in cmds)


def connect(slot, token=None, id=1):
    params = {'token': '@T@'} if token is not None else {}
    return rec(slot, TEXT, cmd({'connect': params, 'id': id}, token))


frames = {
    'basic_session': [
        connect(0),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'pub:a', 'join_leave': True}, 'id': 2})),
        rec(0, TEXT, cmd({'presence': {'channel': 'pub:a'}, 'id': 3})),
        rec(0, TEXT, cmd({'presence_stats': {'channel': 'pub:a'}, 'id': 4})),
        rec(0, TEXT, cmd({'unsubscribe': {'channel': 'pub:a'}, 'id': 5})),
    ],
    'two_clients_drop': [
        connect(0, 0),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'pub:a', 'join_leave': True}, 'id': 2})),
        connect(1, 1),
        rec(1, TEXT, cmd({'subscribe': {'channel': 'pub:a'}, 'id': 2})),
        rec(1, DROP),
        rec(0, TEXT, cmd({'presence': {'channel': 'pub:a'}, 'id': 3})),
        rec(1, ANSWER),
        connect(1, 8),
        rec(1, TEXT, cmd({'subscribe': {'channel': 'pub:a'}, 'id': 2})),
        rec(1, CLOSE, b'\x03\xe8bye'),
    ],
    'batch': [
        rec(0, TEXT, lines(cmd({'connect': {'token': '@T@', 'name': 'js'}, 'id': 1}, 0),
                           {'subscribe': {'channel': 'open:x', 'flag': 1}, 'id': 2},
                           {'subscribe': {'channel': 'x'}, 'id': 3},
                           {'presence_stats': {'channel': 'open:x'}, 'id': 4},
                           {},
                           {'presence': {'channel': 'x'}, 'id': 5})),
    ],
    'fragments': [
        rec(0, TEXT_MORE, b'{"connect":{},'),
        rec(0, PING, b'hi'),
        rec(0, CONT_MORE, b'"id"'),
        rec(0, CONT_END, b':1}'),
        rec(0, BINARY, cmd({'subscribe': {'channel': 'pub:b'}, 'id': 2})),
        rec(0, CONT_END, b'{}'),
    ],
    'bad_input': [
        rec(0, TEXT, cmd({'subscribe': {'channel': 'pub:a'}, 'id': 1})),
        rec(1, TEXT, b'{"connect":'),
        rec(2, TEXT, b'[1]'),
        rec(0, TEXT, cmd({'connect': {}})),
        rec(1, TEXT, lines({'connect': {}, 'id': 1}, {'frobnicate': {}, 'id': 2})),
        rec(2, TEXT, b'{"connect":{"data":' + b'[' * 70 + b']' * 70 + b'},"id":1}'),
        rec(0, TEXT, b' ' * 2100),
        rec(1, TEXT, lines({'connect': {}, 'id': 1}, {'presence': {'channel': ''}, 'id': 2})),
        rec(2, TEXT, lines({'connect': {}, 'id': 1}, {'connect': {}, 'id': 2})),
        rec(0, TEXT, lines({'connect': {}, 'id': 4294967296})),
    ],
    'tokens': [
        connect(0, 3),
        connect(1, 4),
        connect(2, 7),
        connect(0, 2),
        connect(0, 0, id=2),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'priv:a', 'token': '@T@'}, 'id': 3}, 5)),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'priv:b', 'token': '@T@'}, 'id': 4}, 9)),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'priv:b'}, 'id': 5})),
        rec(0, TEXT, cmd({'refresh': {'token': '@T@'}, 'id': 6}, 0)),
        rec(0, TEXT, cmd({'refresh': {'token': '@T@'}, 'id': 7}, 1)),
        connect(1, 8),
        rec(1, TEXT, cmd({'subscribe': {'channel': 'priv:a', 'token': '@T@'}, 'id': 2}, 6)),
        rec(1, TEXT, cmd({'subscribe': {'channel': 'priv:a', 'token': '@T@'}, 'id': 3}, 5)),
    ],
    'limits': [
        connect(0, 0),
        rec(0, TEXT, lines(*[{'subscribe': {'channel': 'pub:%d' % i}, 'id': 2 + i} for i in range(6)])),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'pub:' + 'x' * 40}, 'id': 20})),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'nosuch:x'}, 'id': 21})),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'pub:0'}, 'id': 22})),
        connect(1, 1),
        connect(2, 1),
        rec(0, ANSWER),
        rec(1, DROP),
        rec(1, ANSWER),
        connect(1, 1),
        rec(2, DROP),
        rec(2, ANSWER),
        connect(2, 0),
    ],
    'alloc_failure': [
        rec(0, FAIL, b'\x03'),
        connect(0, 0),
        rec(0, ANSWER),
        connect(0, 0),
        rec(1, TEXT, cmd({'connect': {}, 'id': 1})),
        rec(1, TEXT, cmd({'subscribe': {'channel': 'pub:a', 'join_leave': True}, 'id': 2})),
        rec(0, FAIL, b'\x05'),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'pub:a', 'join_leave': True}, 'id': 2})),
        rec(0, FAIL, b'\x08'),
        rec(0, TEXT, cmd({'presence': {'channel': 'pub:a'}, 'id': 3})),
        rec(1, FAIL, b'\x02'),
        rec(1, DROP),
        rec(0, FAIL, b'\x01'),
        rec(0, TEXT, cmd({'unsubscribe': {'channel': 'pub:a'}, 'id': 4})),
    ],
    'other_methods': [
        connect(0, 1),
        rec(0, TEXT, lines({'subscribe': {'channel': 'open:z', 'join_leave': True}, 'id': 2},
                           {'subscribe': {'channel': 'nop:z'}, 'id': 3},
                           {'presence': {'channel': 'nop:z'}, 'id': 4},
                           {'publish': {'channel': 'open:z', 'data': {}}, 'id': 5},
                           {'history': {'channel': 'open:z'}, 'id': 6},
                           {'rpc': {'method': 'x'}, 'id': 7},
                           {'sub_refresh': {'channel': 'open:z'}, 'id': 8},
                           {'send': {'data': 1}},
                           {'id': 0})),
        connect(1, 8),
        rec(1, TEXT, cmd({'presence': {'channel': 'open:z'}, 'id': 2})),
        rec(1, TEXT, cmd({'subscribe': {'channel': 'open:z'}, 'id': 3})),
        rec(1, PONG, b''),
        rec(0, CLOSE, b'\x00\x00'),
        rec(1, CLOSE, b'\x03'),
    ],
    'slow_reader': [
        connect(0, 0),
        connect(1, 1),
        rec(0, TEXT, cmd({'subscribe': {'channel': 'pub:s', 'join_leave': True}, 'id': 2})),
        rec(1, TEXT, cmd({'subscribe': {'channel': 'pub:s'}, 'id': 2})),
        rec(0, TEXT, lines(*[{'presence': {'channel': 'pub:s'}, 'id': 10 + i} for i in range(40)])),
        rec(1, TEXT, lines(*[c for i in range(20) for c in (
            {'unsubscribe': {'channel': 'pub:s'}, 'id': 100 + 2 * i},
            {'subscribe': {'channel': 'pub:s'}, 'id': 101 + 2 * i})])),
    ],
}

configs = {
    'readme': {
        'token_hmac_secret_key': 's', 'api_key': 'k',
        'allow_anonymous_connect_without_token': False, 'presence': False,
        'namespaces': [{'name': 'public', 'presence': True, 'join_leave': True,
                        'allow_subscribe_for_client': True,
                        'allow_presence_for_subscriber': True}]},
    'everything': {
        'api_key': 'k', 'api_insecure': True, 'token_hmac_secret_key': 's',
        'allow_anonymous_connect_without_token': True, 'address': '::1', 'port': '8001',
        'presence': True, 'join_leave': True, 'force_push_join_leave': True,
        'allow_subscribe_for_client': True, 'allow_subscribe_for_anonymous': True,
        'allow_presence_for_subscriber': True, 'allow_presence_for_client': True,
        'allow_presence_for_anonymous': True, 'client_channel_limit': 0,
        'client_connection_limit': 10000, 'client_queue_max_size': 1,
        'websocket_message_size_limit': 1, 'channel_max_length': 1,
        'ping_interval': '1m', 'pong_timeout': '500ms', 'unknown_key': [1, {}],
        'namespaces': [{'name': 'a.b', 'presence': True, 'x': 1},
                       {'name': 'c-_', 'join_leave': True}]},
    'bad_values': {'port': 70000, 'ping_interval': '3h', 'namespaces': [{'name': 'x'}]},
    'durations': {'ping_interval': 25, 'pong_timeout': '8s'},
    'long_namespace_name': {'namespaces': [{'name': 'n' * 300, 'presence': True}]},
    'duplicate_namespace': {'namespaces': [{'name': 'aa'}, {'name': 'aa'}]},
}


def write(dirname, name, data):
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, name), 'wb') as f:
        f.write(data)


for name, records in frames.items():
    write('corpus/server_frames', name, b''.join(records))
for name, cfg in configs.items():
    write('corpus/server_config', name, json.dumps(cfg, indent=1).encode())
write('corpus/server_config', 'duplicate_key', b'{"port":1,"port":2}')
write('corpus/server_config', 'not_object', b'[true]')
write('corpus/server_config', 'truncated', b'{"namespaces":[{"name":"ab",')
write('corpus/server_config', 'huge_duration', b'{"ping_interval": 9223372036854775807}')


# ---- server_http: [piece size, flags, allocation to fail] + the bytes a
# client sends (see server_http.c). Flags: 1 the client half-closes at the
# end, 2 ten seconds pass before the shutdown, 4 two clients send the same
# bytes, 8 a slow network (small send buffers, clients that read last),
# 16 the clients reset their connections after the last piece, 32 the
# shutdown begins before the last piece.
HALF_CLOSE, TIME_PASSES, TWO_CLIENTS, SLOW, RESET, STOP = 1, 2, 4, 8, 16, 32


def http(*requests, step=0, flags=0, fail=0):
    data = b''.join(r.encode() if isinstance(r, str) else r for r in requests)
    return bytes([step, flags, fail]) + data


def req(method, path, headers=(), body=None, version='1.1'):
    lines = ['%s %s HTTP/%s' % (method, path, version), 'Host: localhost']
    lines += list(headers)
    if body is not None and not any(h.lower().startswith('transfer-encoding')
                                    for h in headers):
        lines.append('Content-Length: %d' % len(body))
    return '\r\n'.join(lines) + '\r\n\r\n' + (body or '')


def api(path, payload, headers=('X-API-Key: k',), **kw):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return req('POST', path, list(headers) + ['Content-Type: application/json'],
               body, **kw)


health = req('GET', '/health')
batch = '\n'.join(json.dumps(c) for c in [
    {'method': 'presence', 'params': {'channel': 'chat:a'}, 'id': 1},
    {'method': 'presence_stats', 'params': {'channel': 'chat:a'}, 'id': 2},
    {'method': 'publish', 'params': {'channel': 'chat:a', 'data': {}}, 'id': 3},
    {'method': 5, 'params': {'channel': 'b'}},
])
upgrade = req('GET', '/connection/websocket', [
    'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Protocol: json'])
# A masked text frame (mask 0) with a connect command, after the upgrade.
connect_frame = b'\x81\x8b\x00\x00\x00\x00' + b'{"id":1,"c"'
http_seeds = {
    'health': http(health),
    'metrics_then_head': http(req('GET', '/metrics'), req('HEAD', '/metrics'),
                              step=len(req('GET', '/metrics'))),
    'api_presence': http(api('/api/presence', {'channel': 'chat:a'})),
    'api_stats_authorization': http(api('/api/presence_stats', {'channel': 'b'},
                                        headers=['Authorization: apikey k'])),
    'api_batch_query_key': http(api('/api?api_key=k', batch, headers=[])),
    'api_batch_http10': http(api('/api', batch, version='1.0')),
    'api_user_and_changes': http(api('/api/user_presence', {'user': 'u1'}),
                                 api('/api/presence_changes', {'channel': 'chat:a'}),
                                 step=len(api('/api/user_presence', {'user': 'u1'}))),
    'api_errors': http(api('/api/presence', {'channel': ''},
                           headers=['X-API-Key: k',
                                    'X-Centrifugo-Error-Mode: transport']),
                       step=255),
    'api_wrong_key_get': http(req('GET', '/api'), req('POST', '/api/presence',
                              ['X-API-Key: nope'], '{}'), step=len(req('GET', '/api'))),
    'keepalive_pair': http(health, health, step=len(health)),
    'pipelined_pair': http(health, req('GET', '/metrics')),
    'http10_keepalive': http(req('GET', '/health', ['Connection: keep-alive'],
                                 version='1.0'),
                             req('GET', '/health', version='1.0'),
                             step=len(req('GET', '/health', ['Connection: keep-alive'],
                                          version='1.0'))),
    'chunked_body': http(req('POST', '/api/presence',
                             ['X-API-Key: k', 'Transfer-Encoding: chunked'],
                             '5\r\n{"cha\r\nf\r\nnnel":"chat:a"}\r\n0\r\n\r\n'),
                         step=7),
    'body_too_big': http(req('POST', '/small', [], 'x' * 100)),
    'chunked_too_big': http(req('POST', '/small', ['Transfer-Encoding: chunked'],
                                '10\r\n0123456789abcdef\r\n1\r\nx\r\n0\r\n\r\n')),
    'small_echo_split': http(req('PUT', '/small?q=a%20b+c&z=1',
                                 ['Cookie: a=1; c=yes', 'Expect: 100-continue'],
                                 'hello'), step=1),
    'bad_method': http('BREW /health HTTP/1.1\r\n\r\n'),
    'bad_header': http('GET /health HTTP/1.1\r\nBad Header\r\n\r\n'),
    'bad_path': http(req('GET', '/health/%zz'), req('GET', 'health')),
    'not_found': http(req('GET', '/nothing'), health, step=len(req('GET', '/nothing'))),
    'upgrade': http(upgrade, connect_frame),
    # A refused upgrade is kept alive: the next request is an HTTP one
    # again (once it went to the WebSocket endpoint too).
    'upgrade_bad_version': http(upgrade.replace('Version: 13', 'Version: 8'),
                                req('GET', '/small'), step=len(upgrade) - 1),
    # http_parser lets a control byte by as a value's first: the server
    # refuses it (it was echoed as the WebSocket protocol).
    'upgrade_protocol_control_byte': http(upgrade.replace('Protocol: json',
                                                          'Protocol: \x1ason')),
    'small_nul_in_header': http('GET /small HTTP/1.1\r\nX: \x00v\r\n\r\n'),
    # A method that breaks off after "HE" is no HEAD: its 400 has its body.
    'bad_method_like_head': http('HEX /small HTTP/1.1\r\n\r\n'),
    'stream': http(req('GET', '/stream?n=3'), step=255),
    'stream_http10_head': http(req('GET', '/stream?n=2', version='1.0')),
    'stream_head': http(req('HEAD', '/stream?n=5')),
    'stream_whole': http(req('GET', '/stream?whole=1')),
    'stream_wait': http(req('GET', '/stream?wait=2&n=2')),
    'small_later': http(req('GET', '/small?later=1&q=x')),
    'small_later_head': http(req('HEAD', '/small?later=1')),
    'partial_then_time': http('GET /health HTTP/1.1\r\nHost: l', flags=TIME_PASSES),
    'keepalive_half_close': http(health, flags=HALF_CLOSE | TIME_PASSES),
    'fail_accept': http(health, fail=1),
    'fail_accept_socket': http(health, fail=2),
    'fail_accept_read': http(health, fail=3),
    'fail_batch': http(api('/api', batch), fail=14),
    'fail_respond': http(api('/api/presence', {'channel': 'chat:a'}), fail=42),
    'many_headers': http(req('GET', '/health', ['X-%d: v' % i for i in range(70)])),
    'empty_header_value': http('GET /small HTTP/1.1\r\nHost: l\r\nX-Empty:\r\n\r\n'),
    'two_clients_streams': http(req('GET', '/stream?n=6'), flags=TWO_CLIENTS),
    'two_clients_keepalive': http(health, req('GET', '/small?q=2'), step=len(health),
                                  flags=TWO_CLIENTS),
    'slow_big_stream': http(req('GET', '/stream?n=8&big=1'), flags=SLOW),
    'slow_big_streams_two': http(req('GET', '/stream?n=6&big=1'),
                                 flags=SLOW | TWO_CLIENTS),
    'slow_big_stream_stalls': http(req('GET', '/stream?n=8&big=1'),
                                   flags=SLOW | TIME_PASSES),
    'slow_big_stream_reset': http(req('GET', '/stream?n=9&big=1'), flags=SLOW | RESET),
    'slow_two_streams_reset': http(req('GET', '/stream?n=7&big=1'),
                                   flags=SLOW | RESET | TWO_CLIENTS),
    'reset_partial': http('POST /small HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc',
                          flags=RESET),
    # The shutdown begins: a kept-alive connection that waits is closed, a
    # request in progress is answered with Connection: close (/health 503).
    'stop_keepalive_idle': http(health, health, step=len(health), flags=STOP),
    'stop_request_in_progress': http(health, step=len(health) - 2, flags=STOP),
    'stop_two_clients_api': http(api('/api/presence', {'channel': 'chat:a'}),
                                 step=40, flags=STOP | TWO_CLIENTS),
    'slow_keepalive_then_request': http(req('GET', '/metrics'), health,
                                        step=len(req('GET', '/metrics')), flags=SLOW),
}
for name, data in http_seeds.items():
    write('corpus/server_http', name, data)
