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
    int rc = presence_stats(reg, "lobby", nullptr, &stats);
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
                   kinds == 0x11fu && rules
               ? 0
               : 1;
}
