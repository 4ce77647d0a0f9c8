# Security policy: what a task, the environment given to a plugin and a change may not carry.
#
# The input document is described in policies/README.md. Every message says what was found and where,
# and ends with "(rule <id>)"; no message ever contains a secret. The values found are listed in
# `secrets` ({"path", "rule", "value"}) so that the engine can redact them everywhere it writes.
#
# Operators edit their workspace's copy of this file; `engine run` refuses to start when it does not
# parse. Rego v1 syntax.
package engine.security

# -- secret shapes ------------------------------------------------------------------------------------
# rule id -> the pattern (RE2 syntax), what it is called in messages, the capture group that holds the
# secret (0: the whole match), and hints: lower-case fragments one of which any match contains, so
# that the pattern only runs on text that may hold one (most text holds none, and a regular expression
# costs far more than a substring test). The ids match the redaction layer's rules (engine/redact.py).
shapes := {
	"github_token": {
		"re": `\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{20,255})`,
		"what": "a GitHub token", "group": 0,
		"hints": ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
	},
	"aws_access_key_id": {
		"re": `\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`,
		"what": "an AWS access key id", "group": 0, "hints": ["akia", "asia"],
	},
	"aws_secret_access_key": {
		"re": `(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})`,
		"what": "an AWS secret access key", "group": 1, "hints": ["secret"],
	},
	"private_key": {
		"re": `(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`,
		"what": "a private key block", "group": 0, "hints": ["private key-----"],
	},
	"slack_token": {
		"re": `\bxox[abposr]-[A-Za-z0-9-]{10,}`,
		"what": "a Slack token", "group": 0, "hints": ["xox"],
	},
	# password=..., token: ..., api_key="..." with a value of 12 characters or more that is not a
	# reference ($VAR, ${{ ... }}, <placeholder>).
	"credential_assignment": {
		"re": `(?i)\b(?:password|passwd|pwd|secret|token|api[_-]?key)["']?\s*[:=]\s*["']?([^\s"'$<{][^\s"',;]{11,})`,
		"what": "a password or token assignment", "group": 1,
		"hints": ["password", "passwd", "pwd", "secret", "token", "api_key", "api-key", "apikey"],
	},
}

# A credential assignment whose value is itself a known token is reported as that token, once.
shadowed(rule, value) if {
	rule == "credential_assignment"
	some other, shape in shapes
	other != rule
	regex.match(shape.re, value)
}

# -- where secrets are looked for ---------------------------------------------------------------------
# Every string anywhere in the task (prompt, args, metadata, files, flags, tags, env, ...), named by
# its path: task.prompt, task.args.token, task.files[2], task.metadata["odd key"].
texts contains {"path": where, "where": where, "text": value, "low": lower(value)} if {
	walk(input.task, [path, value])
	is_string(value)
	where := concat("", array.concat(["task"], [segment(s) | some s in path]))
}

# The values of the environment given to a plugin, when it is given with values.
texts contains {"path": where, "where": where, "text": value, "low": lower(value)} if {
	is_object(input.env)
	some name, value in input.env
	is_string(value)
	where := concat("", ["env", segment(name)])
}

# Each line of the diff a state change made, except the lines it removes.
texts contains {"path": "diff", "where": sprintf("the diff (line %d)", [i + 1]), "text": line, "low": lower(line)} if {
	is_string(input.diff)
	some i, line in split(input.diff, "\n")
	not startswith(line, "-")
}

segment(s) := sprintf("[%d]", [s]) if is_number(s)

segment(s) := sprintf(".%s", [s]) if plain_key(s)

segment(s) := sprintf("[\"%s\"]", [s]) if {
	is_string(s)
	not plain_key(s)
}

# A key made of letters, digits, "_" and "-" only (tested without a regular expression: this runs for
# every key of every task).
plain_key(s) if {
	is_string(s)
	s != ""
	trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == ""
}

# One finding: a secret of one shape in one place.
hits contains {"path": t.path, "where": t.where, "rule": rule, "value": value} if {
	some t in texts
	some rule, shape in shapes
	hinted(t.low, shape.hints)
	some match in regex.find_all_string_submatch_n(shape.re, t.text, -1)
	value := match[shape.group]
	not shadowed(rule, value)
}

hinted(text, hints) if {
	some hint in hints
	contains(text, hint)
}

secrets contains {"path": hit.path, "rule": hit.rule, "value": hit.value} if some hit in hits

deny contains msg if {
	some hit in hits
	msg := sprintf("%s holds %s (rule %s)", [hit.where, shapes[hit.rule].what, hit.rule])
}

# -- the environment given to a plugin: variables it must never receive ------------------------------
# input.env is a list of names, or an object of names and values. data.engine.config.forbidden_env
# replaces the list below.
default forbidden_env := {
	"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN",
	"NPM_TOKEN", "PYPI_TOKEN", "TWINE_PASSWORD", "SLACK_TOKEN", "SLACK_BOT_TOKEN", "VAULT_TOKEN",
}

forbidden_env := names if {
	configured := data.engine.config.forbidden_env
	names := {name | some name in configured}
}

env_names contains name if {
	is_array(input.env)
	some name in input.env
	is_string(name)
}

env_names contains name if {
	is_object(input.env)
	some name, _ in input.env
}

env_forbidden(name) := "a forbidden variable" if name in forbidden_env

# ...and any variable whose name says it holds a password, a secret or a private key.
secret_names := ["PASSWORD", "PASSWD", "SECRET", "SECRET_KEY", "PRIVATE_KEY"]

env_forbidden(name) := "a variable named like a secret" if {
	not name in forbidden_env
	upper_name := upper(name)
	some word in secret_names
	named_like(upper_name, word)
}

named_like(name, word) if name == word

named_like(name, word) if endswith(name, concat("", ["_", word]))

deny contains msg if {
	some name in env_names
	why := env_forbidden(name)
	msg := sprintf("the environment given to the plugin passes %s, %s (rule forbidden_env)", [name, why])
}

# -- paths a task may not name ------------------------------------------------------------------------
bad_files contains [i, raw, why] if {
	some i, raw in input.task.files
	is_string(raw)
	path := replace(raw, "\\", "/")
	some folder, why in {".git": "inside a .git/ folder", ".ssh": "inside a .ssh/ folder", "/etc": "under /etc/"}
	in_folder(path, folder)
}

bad_files contains [i, raw, "a .pem key file"] if {
	some i, raw in input.task.files
	is_string(raw)
	endswith(lower(raw), ".pem")
}

deny contains msg if {
	some [i, raw, why] in bad_files
	msg := sprintf("task.files[%d] names '%s', %s (rule forbidden_path)", [i, raw, why])
}

in_folder(path, folder) if path == folder

in_folder(path, folder) if startswith(path, concat("", [folder, "/"]))

in_folder(path, folder) if {
	not startswith(folder, "/")
	contains(path, concat("", ["/", folder, "/"]))
}

in_folder(path, folder) if {
	not startswith(folder, "/")
	endswith(path, concat("", ["/", folder]))
}

# -- environments a task may not target ---------------------------------------------------------------
# task.metadata.environment in this list is refused unless the task is tagged allow-<environment>.
# data.engine.config.forbidden_environments ([policy] forbidden_environments in engine.toml) replaces it.
default forbidden_environments := {"production"}

forbidden_environments := names if {
	configured := data.engine.config.forbidden_environments
	names := {lower(e) | some e in configured}
}

deny contains msg if {
	environment := input.task.metadata.environment
	is_string(environment)
	lower(environment) in forbidden_environments
	allow := sprintf("allow-%s", [lower(environment)])
	not allow in {lower(t) | some t in input.task.tags}
	msg := sprintf(
		"task.metadata.environment is '%s', a forbidden environment; tag the task '%s' to allow it (rule forbidden_environment)",
		[environment, allow],
	)
}
