#include "bk_idle.h"
#include "bk_config.h"

uint64_t bk_idle_period_ns(const struct bk_config *cfg)
{
	uint64_t p = cfg->idle_tick_ns;

	if (!p)
		return cfg->tick_ns;
	/* the heartbeat word is written every tick: keep it well within the
	 * bound engines judge it by (clients read heartbeat_bound_ns) */
	if (p > cfg->heartbeat_bound_ns / 4)
		p = cfg->heartbeat_bound_ns / 4;
	return p > cfg->tick_ns ? p : cfg->tick_ns;
}

uint64_t bk_idle_next_period(struct bk_idle *s, const struct bk_config *cfg, uint64_t now)
{
	uint64_t idle = bk_idle_period_ns(cfg);

	s->idle = now >= s->active_until_ns && idle > cfg->tick_ns;
	return s->idle ? idle : cfg->tick_ns;
}
