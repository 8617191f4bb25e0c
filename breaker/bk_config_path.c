/*
 * bk_config_path - which config file breakerd and the CLI read when none is
 * named on the command line: the operator's runbooks assume both find the
 * same file without being told (docs/config.md "Which file").
 */
#include <stdlib.h>
#include <unistd.h>

#include "bk_config.h"

const char *bk_config_pick(const char *given, const char **from)
{
	const char *env = getenv(BK_CONFIG_ENV);

	if (given) {
		*from = "--config";
		return given;
	}
	/* set but empty: the embedded defaults, whatever /etc holds */
	if (env) {
		*from = BK_CONFIG_ENV;
		return *env ? env : NULL;
	}
	/* absent is normal (a developer's machine); anything else there, even
	 * unreadable, is the operator's config and is read, or refused loudly */
	if (access(BK_CONFIG_DEFAULT_PATH, F_OK) == 0) {
		*from = "the default path";
		return BK_CONFIG_DEFAULT_PATH;
	}
	*from = "embedded defaults";
	return NULL;
}
