/* config_int: what config's files share (config.c, config_read.c,
 * config_names.c, config_provider.c). Nothing outside them includes it.
 *
 * config_read.c reads typed values out of libconfig's tree and reports the
 * first problem as "FILE:LINE: KEY: problem" (KEY the dotted path of the
 * setting); the loaders of each section use it. */
#ifndef PROMPTYARD_CONFIG_INT_H
#define PROMPTYARD_CONFIG_INT_H

#include "config.h"

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MS_MAX       INT64_C(86400000) /* a day: the longest duration any _ms key takes */
#define MIB          (INT64_C(1) << 20)
#define USD_REQUIRED INT64_C(-2)

struct loader {
	const char *path; /* the file given to config_load() */
	int flags;        /* enum config_flags */
	char *errstr;
	size_t errstr_size;
	bool failed; /* errstr holds the first problem; later ones are dropped */
};

/* Sections config_load() adds itself for an absent group have no line; 1 is
 * the least wrong place to point at. */
int config_read_line(const config_setting_t *s);

/* Records "FILE:LINE: KEY: problem" for member name of group g (or for g when
 * name is NULL) and returns -1. The line is the member's when it exists, else
 * g's: a missing key is reported where it should have been. fmt must never be
 * given a secret. */
int config_read_fail(struct loader *ld, const config_setting_t *g, const char *name,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Logs a warning for every member of group g not named in known (NULL-ended). */
void config_read_warn_unknown(const struct loader *ld, const config_setting_t *g,
                              const char *const *known);

/* Reads the integer member name of g into *out: def when absent, else it must
 * be an integer (never a float) in [min, max]. Returns 0 or -1. */
int config_read_int64(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
                      int64_t min, int64_t max, int64_t *out);

/* A duration in milliseconds: a positive integer up to MS_MAX. */
int config_read_ms(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
                   int64_t *out);

/* config_read_int64() for int fields; min and max must fit an int. */
int config_read_int(struct loader *ld, const config_setting_t *g, const char *name, int def,
                    int min, int max, int *out);

/* Reads the number member name of g (an integer is accepted) into *out: def
 * when absent, else it must lie in [min, max]. */
int config_read_double(struct loader *ld, const config_setting_t *g, const char *name, double def,
                       double min, double max, double *out);

/* Reads the USD amount member name of g as nano-USD into *out (rounded to the
 * nearest): def when absent; required when def is -2. */
int config_read_usd(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
                    int64_t *out);

int config_read_bool(struct loader *ld, const config_setting_t *g, const char *name, bool def,
                     bool *out);

/* Sets *out to the string member name of g (borrowed from libconfig's tree),
 * or NULL when it is absent. Returns -1 if it is not a string. */
int config_read_str(struct loader *ld, const config_setting_t *g, const char *name,
                    const char **out);

/* Copies the string member name of g into *out (new): def when absent, and an
 * error "is required" when def is NULL. */
int config_read_dup(struct loader *ld, const config_setting_t *g, const char *name, const char *def,
                    char **out);

/* config_read_dup() where "" is an error too. */
int config_read_dup_nonempty(struct loader *ld, const config_setting_t *g, const char *name,
                             const char *def, char **out);

/* Sets *out to the list or array member name of g whose elements are all
 * strings, or NULL when it is absent. */
int config_read_str_list(struct loader *ld, const config_setting_t *g, const char *name,
                         const config_setting_t **out);

/* Does s name an environment variable ([A-Za-z_][A-Za-z0-9_]*)? Checked so that
 * a key pasted into api_key_env by mistake is refused without being echoed. */
bool config_read_is_env_name(const char *s);

/* Reads the environment variable env into *secret (new; NULL when unset or
 * empty). A value pasted with a trailing newline or blanks (a common mistake
 * with Kubernetes Secrets) is trimmed, with a warning naming the variable;
 * any other control character is refused, naming the variable and never the
 * value, since it would end up in a request head. Returns 0, or -1 with the
 * problem in why. */
int config_read_env_secret(const char *env, char **secret, const char **why);

/* Reads the *_env member name of g into *env (new, "" when absent) and the
 * variable it names into *secret (new, NULL when unset or empty). When the
 * variable is missing and required, fails naming the variable, never a value;
 * when it is missing and not required, *missing (if given) gets its name. */
int config_read_secret(struct loader *ld, const config_setting_t *g, const char *name,
                       bool required, char **env, char **secret, char **missing);

/* A secret written into the file itself is refused outright. */
int config_read_refuse_secret(struct loader *ld, const config_setting_t *g, const char *name,
                              const char *instead);

/* Is s "" or "host:port" (an IPv6 host in brackets)? */
bool config_read_is_listen_addr(const char *s);

/* Sets *out to the group called name under root. An absent section is added
 * empty, so every key takes its default through the same code. */
int config_read_section(struct loader *ld, config_setting_t *root, const char *name,
                        const config_setting_t **out);

/* Sets *out to the list of groups called name under root (NULL when absent,
 * *n = 0). Every element must be a group. */
int config_read_group_list(struct loader *ld, const config_setting_t *root, const char *name,
                           const config_setting_t **out, size_t *n);

/* The loaders of config_provider.c: element i of providers and of models. */
int config_load_provider(struct loader *ld, const config_setting_t *g, struct config *cfg,
                         size_t i);
int config_load_model(struct loader *ld, const config_setting_t *g, struct config *cfg, size_t i);

#endif
