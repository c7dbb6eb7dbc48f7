/* config_names: the names of the configuration's small enums (strategies,
 * capabilities, modes, efforts, periods), and entries found by name. */
#include "config.h"

#include <stdio.h>
#include <string.h>

/* One table of names for a small enum: index i is value i. */
static int name_parse(const char *const *names, int n, const char *name, int *out)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

static const char *const strategy_names[STRATEGY_COUNT] = {"cheapest", "balanced", "fastest",
                                                           "reliable", "auto"};

int strategy_parse(const char *name, enum strategy *out)
{
	int v = 0;
	if (name_parse(strategy_names, STRATEGY_COUNT, name, &v) < 0)
		return -1;
	*out = (enum strategy)v;
	return 0;
}

const char *strategy_name(enum strategy s)
{
	return (unsigned)s < STRATEGY_COUNT ? strategy_names[s] : "?";
}

static const char *const capability_names[CAPABILITY_COUNT] = {
        "json", "tools", "vision", "long_context", "json_schema", "pdf", "reasoning"};

int capability_parse(const char *name, unsigned *bit)
{
	for (unsigned i = 0; i < CAPABILITY_COUNT; i++) {
		if (strcmp(name, capability_names[i]) == 0) {
			*bit = 1u << i;
			return 0;
		}
	}
	return -1;
}

const char *capability_name(unsigned bit)
{
	for (unsigned i = 0; i < CAPABILITY_COUNT; i++)
		if (bit == 1u << i)
			return capability_names[i];
	return "?";
}

const char *capability_list(unsigned caps, char *out, size_t out_size)
{
	size_t at = 0;
	if (!out_size)
		return out;
	out[0] = '\0';
	for (unsigned i = 0; i < CAPABILITY_COUNT; i++) {
		if (!(caps & (1u << i)))
			continue;
		int n = snprintf(out + at, out_size - at, "%s%s", at ? "," : "",
		                 capability_names[i]);
		if (n < 0 || (size_t)n >= out_size - at)
			break;
		at += (size_t)n;
	}
	return out;
}

static const char *const mode_names[] = {"sync", "batch", "auto"};

int mode_parse(const char *name, enum job_mode *out)
{
	int v = 0;
	if (name_parse(mode_names, 3, name, &v) < 0)
		return -1;
	*out = (enum job_mode)v;
	return 0;
}

const char *mode_name(enum job_mode m)
{
	return (unsigned)m < 3 ? mode_names[m] : "?";
}

static const char *const effort_names[] = {"low", "medium", "high"};

int reasoning_effort_parse(const char *name, enum reasoning_effort *out)
{
	int v = 0;
	if (name_parse(effort_names, 3, name, &v) < 0)
		return -1;
	*out = (enum reasoning_effort)v;
	return 0;
}

const char *reasoning_effort_name(enum reasoning_effort e)
{
	return e >= EFFORT_LOW && e <= EFFORT_HIGH ? effort_names[e] : "none";
}

static const char *const period_names[] = {"none", "day", "month"};

int period_parse(const char *name, enum period *out)
{
	int v = 0;
	if (name_parse(period_names, 3, name, &v) < 0)
		return -1;
	*out = (enum period)v;
	return 0;
}

const char *period_name(enum period p)
{
	return (unsigned)p < 3 ? period_names[p] : "?";
}

int config_model_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_models; i++)
		if (strcmp(cfg->models[i].name, name) == 0)
			return (int)i;
	return -1;
}

int config_budget_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_budgets; i++)
		if (strcmp(cfg->budgets[i].name, name) == 0)
			return (int)i;
	return -1;
}

int config_provider_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_providers; i++)
		if (strcmp(cfg->providers[i].name, name) == 0)
			return (int)i;
	return -1;
}
