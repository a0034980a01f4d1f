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
    presence_registry_free(reg);
    return rc == PRESENCE_OK && stats.num_clients == 0 ? 0 : 1;
}
