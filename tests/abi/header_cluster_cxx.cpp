// presence_cluster.h must compile as C++ and link from C++ (extern "C").
#include <presence_cluster.h>

int main()
{
    presence_registry *reg = nullptr;
    if (presence_registry_new(nullptr, &reg) != PRESENCE_OK) {
        return 1;
    }
    presence_cluster_config cfg;
    presence_cluster_config_init(&cfg);
    cfg.redis_port = 1; /* nothing listens; the handle does not connect yet */
    cfg.node_id = "cxx";
    presence_cluster *cluster = nullptr;
    int rc = presence_cluster_new(reg, &cfg, &cluster);
    presence_cluster_status st{};
    if (rc == PRESENCE_OK) {
        rc = presence_cluster_status_get(cluster, &st);
    }
    bool named = rc == PRESENCE_OK &&
                 presence_cluster_node_id(cluster)[0] == 'c' && !st.connected;
    presence_cluster_free(cluster);
    presence_registry_free(reg);
    return named ? 0 : 1;
}
