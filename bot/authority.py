"""Who may do what to a matter, at which tier: one pure function and its table.

Once a matter has gone up, the tier that holds it decides it: closing, referring,
suspending, resuming, claiming and resolving belong to that tier and those above. The
tiers below may still add to it (a note, a photo) and, unless the config forbids it,
resolve it — the head often does the work on the ground — and then the tier that holds
it is told at once. Only its reporter may withdraw a matter, and only while the unit
holds it; a matter closed by a tier is reopened by that tier or one above (the
reporter's 不满意 rating is a path of its own). Anonymous admins and channel posts are
not a person: they may report, nothing else.
"""

from __future__ import annotations

from enum import StrEnum

UNIT = 3  # the tiers: 1 station, 2 community, 3 unit (as in bot/tree.py)


class Action(StrEnum):
    CLAIM = "claim"
    RESOLVE = "resolve"
    NOTE = "note"
    ATTACH = "attach"
    CATEGORIZE = "categorize"
    CLOSE = "close"  # 无法解决
    REFER = "refer"  # 转交
    SUSPEND = "suspend"
    RESUME = "resume"
    ESCALATE = "escalate"
    RETURN = "return"
    TAKEOVER = "takeover"
    REOPEN = "reopen"
    CANCEL = "cancel"
    RATE = "rate"


class Verdict(StrEnum):
    ALLOW = "allow"
    ALLOW_TELL_HOLDER = "allow_tell_holder"  # allowed from below: the tier that holds it is told at once
    HELD_ABOVE = "held_above"  # the actor's part, but the matter is held (or was closed) by a higher tier
    NOT_ALLOWED = "not_allowed"  # no part in this matter
    NOT_REPORTER = "not_reporter"  # only the reporter may do this
    NOT_A_PERSON = "not_a_person"  # an anonymous admin or a channel: may report, nothing else


# What each action asks of the actor.
#   "holder":   a leader at the holding tier or above
#   "resolve":  as "holder", or a leader below if resolve_from_below (the holder is told)
#   "leader":   any leader of the unit or above, whatever the tier
#   "upper":    a tier-2 or tier-1 leader at the holding tier or above (return, take over)
#   "reporter": the reporter alone, and only while the unit holds the matter
#   "reopen":   as "holder"; also the reporter when the unit closed it
#   "anyone":   the reporter or any leader
_NEEDS: dict[Action, str] = {
    Action.CLAIM: "holder",
    Action.CLOSE: "holder",
    Action.REFER: "holder",
    Action.SUSPEND: "holder",
    Action.RESUME: "holder",
    Action.RESOLVE: "resolve",
    Action.NOTE: "leader",
    Action.ESCALATE: "leader",  # sending a matter up buries nothing
    Action.RETURN: "upper",
    Action.TAKEOVER: "upper",
    Action.REOPEN: "reopen",
    Action.CANCEL: "reporter",
    Action.ATTACH: "anyone",
    Action.CATEGORIZE: "anyone",
    Action.RATE: "rater",
}


def decide(
    action: Action,
    actor_tier: int | None,
    is_reporter: bool,
    holder: int,
    *,
    person: bool = True,
    resolve_from_below: bool = True,
) -> Verdict:
    """May someone do ``action`` to a matter?

    ``actor_tier``: the highest tier above the matter's unit that the actor leads (1, 2 or
    3), or None for a resident: ``bot.roles.role(tree, actor, unit).tier``. ``holder``: the
    tier that holds the matter; for a reopen, the tier that held it when it was closed, or
    the closer's tier if that was higher.
    ``person``: False for an anonymous admin or a channel post.
    """
    if not person:
        return Verdict.NOT_A_PERSON
    needs = _NEEDS[action]
    leader = actor_tier is not None
    at_or_above = leader and actor_tier <= holder  # type: ignore[operator]
    if needs == "rater":
        return Verdict.ALLOW if is_reporter else Verdict.NOT_REPORTER
    if needs == "reporter":
        if not is_reporter:
            return Verdict.NOT_REPORTER
        return Verdict.ALLOW if holder == UNIT else Verdict.HELD_ABOVE
    if needs == "anyone":
        return Verdict.ALLOW if is_reporter or leader else Verdict.NOT_ALLOWED
    if needs == "leader":
        return Verdict.ALLOW if leader else Verdict.NOT_ALLOWED
    if needs == "upper":
        if not leader or actor_tier == UNIT:
            return Verdict.NOT_ALLOWED
        return Verdict.ALLOW if at_or_above else Verdict.HELD_ABOVE
    if needs == "reopen":
        if at_or_above or (is_reporter and holder == UNIT):
            return Verdict.ALLOW
        return Verdict.HELD_ABOVE if leader or is_reporter else Verdict.NOT_ALLOWED
    if not leader:
        return Verdict.NOT_ALLOWED
    if at_or_above:
        return Verdict.ALLOW
    if needs == "resolve" and resolve_from_below:
        return Verdict.ALLOW_TELL_HOLDER
    return Verdict.HELD_ABOVE
