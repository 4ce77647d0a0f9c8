# Compliance policy: what the engine's own guarantees need before it lets a change happen.
#
# The input document is described in policies/README.md. Every message ends with "(rule <id>)".
# Rego v1 syntax.
package engine.compliance

plugin_id := object.get(input, ["plugin", "id"], "(unnamed)")

state_change if input.plugin.category == "state_change"

# A checkpoint is a commit id, a ref or any other non-empty value; null, false and "" are none.
checkpointed if {
	c := input.checkpoint
	not c in {null, false, ""}
}

# Right before a state change applies, the checkpoint to roll back to must exist.
deny contains msg if {
	input.phase == "apply"
	state_change
	not checkpointed
	msg := sprintf(
		"plugin %s changes state, and no checkpoint was made before it applies (rule checkpoint_required)",
		[plugin_id],
	)
}

# A plugin that changes state must be able to say what it would change (WhatIf) without changing it.
deny contains msg if {
	state_change
	not input.plugin.whatif == true
	msg := sprintf("plugin %s changes state but does not support WhatIf (rule whatif_required)", [plugin_id])
}

# The audit ledger must verify before a run starts (and whenever the kernel passes its state).
deny contains msg if {
	input.ledger.verified == false
	msg := sprintf("the ledger does not verify: %s (rule ledger_verified)", [ledger_reason])
}

default ledger_reason := "no reason given"

ledger_reason := input.ledger.reason if {
	is_string(input.ledger.reason)
	input.ledger.reason != ""
}
