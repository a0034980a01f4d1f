// presence.h must compile as C++ and link from C++ (extern "C").
#include <presence.h>

int main()
{
    presence_config config;
    presence_config_init(&config);
    presence_registry *reg = nullptr;
    if (presence_registry_new(&config, &reg) != PRESENCE_OK) {
        return 1;
    }
    presence_channel_stats stats{};
    int rc = presence_stats(reg, "lobby", presence_trusted(), &stats);
    /* The nodes API, enums and flags included. */
    if (rc == PRESENCE_OK) {
        rc = presence_remote_join(reg, "n1", "lobby", "c1", "u1", nullptr, 0,
                                  nullptr, 0);
    }
    presence_snapshot *snap = nullptr;
    if (rc == PRESENCE_OK) {
        rc = presence_node_memberships(reg, "n1", &snap);
    }
    bool one = snap != nullptr && snap->count == 1 &&
               snap->members[0].node_id[0] == 'n';
    presence_snapshot_free(snap);
    size_t left = 0;
    if (rc == PRESENCE_OK) {
        rc = presence_node_down(reg, "n1", PRESENCE_LEAVE_NODE_DOWN, &left);
    }
    unsigned kinds = PRESENCE_EVENTS_ALL | PRESENCE_EVENTS_EVERY_NAMESPACE;
    /* Handles, their options macro and the change results. */
    presence_client_options opts;
    presence_client_options_init(&opts);
    opts.client_id = "h1";
    int app = 0;
    opts.app = &app;
    presence_client *h = nullptr;
    presence_change change{};
    presence_join_item items[] = {{"a", nullptr, 0}, {"b", "x", 1}};
    presence_change results[2] = {};
    size_t failed = 0;
    if (rc == PRESENCE_OK) {
        rc = presence_client_open(reg, &opts, &h);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_join(reg, h, "lobby", nullptr, 0, &change);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_join_many(reg, h, items, 2, results, &failed);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_update(reg, h, "b", "y", 1, &change);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_touch(reg, h, nullptr);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_leave(reg, h, "a", &change);
    }
    presence_visit_info vinfo{};
    if (rc == PRESENCE_OK) {
        rc = presence_visit(reg, "b", presence_trusted(), 0, 0,
                            [](const presence_member *m, void *ud) {
                                *static_cast<size_t *>(ud) += m->app != nullptr;
                            },
                            &vinfo.visited, nullptr);
    }
    bool handles = rc == PRESENCE_OK && vinfo.visited == 1 &&
                   presence_client_app(h) == &app &&
                   presence_client_id(h)[0] == 'h' &&
                   change.kind == PRESENCE_CHANGE_LEFT &&
                   results[1].kind == PRESENCE_CHANGE_JOINED;
    if (rc == PRESENCE_OK) {
        rc = presence_client_close(reg, h, nullptr);
    }
    presence_registry_free(reg);
    /* The rules and names that take no registry. */
    size_t ns_len = 0;
    const char *rest = nullptr;
    bool rules =
        presence_name_check(PRESENCE_NAME_CHANNEL, "chat:1", 255, nullptr) ==
            PRESENCE_OK &&
        presence_channel_split("chat:1", ':', &ns_len, &rest) == PRESENCE_OK &&
        ns_len == 4 && rest[0] == '1' &&
        presence_event_kind_name(PRESENCE_EVENT_USER_JOIN)[0] == 'u' &&
        presence_leave_reason_name(PRESENCE_LEAVE_RESYNC)[0] == 'r';
    return rc == PRESENCE_OK && stats.num_clients == 0 && one && left == 1 &&
                   kinds == 0x11fu && rules && handles
               ? 0
               : 1;
}
