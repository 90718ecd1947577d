/*
 * kubeconfig.h - where a client finds its API server and credentials: a
 * kubeconfig file (clusters, users, contexts; certificate and token data
 * inline or in files) or the in-cluster service account, as client-go's
 * clientcmd and rest.InClusterConfig. Pure parsing and file reads; any thread.
 *
 * A kube_config and every string in it belong to the caller, freed with
 * kube_config_free.
 */
#ifndef KUBE_KUBECONFIG_H
#define KUBE_KUBECONFIG_H

#include <stddef.h>

typedef struct kube_config {
    char *server;                /* "https://10.0.0.1:443" or "http://127.0.0.1:8080" */
    char *ca_file;               /* PEM bundle path, or NULL */
    char *ca_data;               /* PEM bundle bytes, or NULL */
    char *token;                 /* bearer token, or NULL */
    char *token_file;            /* re-read when it changes (bound service account tokens rotate) */
    char *cert_file, *cert_data; /* client certificate (PEM), optional */
    char *key_file, *key_data;   /* client key (PEM), optional */
    char *namespace_;            /* the context's or the pod's namespace; may be NULL */
    double qps;                  /* client-side rate limit; default 50 */
    unsigned burst;              /* default 100 */
    long timeout_ms;             /* per non-watch request; default 30000 */
    char *user_agent;            /* "name/version" sent with every request; NULL: "kube-client-c" */
} kube_config;

/* In-cluster configuration from the service account files in sa_dir (NULL:
 * /var/run/secrets/kubernetes.io/serviceaccount). CERR_NOTFOUND when not
 * running in a pod. */
int kube_config_in_cluster(const char *sa_dir, kube_config **out);
/* From a kubeconfig file (context NULL: current-context). */
int kube_config_load(const char *path, const char *context, kube_config **out);
/* From bytes (for tests and fuzzing); base_dir resolves relative file paths. */
int kube_config_parse(const char *yaml, size_t len, const char *base_dir, const char *context,
                      kube_config **out);
void kube_config_free(kube_config *cfg);

#endif
