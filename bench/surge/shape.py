"""The step profile as a Locust `LoadTestShape` (imported by the locustfile only: Locust
patches the process with gevent, so nothing else imports this module)."""

from __future__ import annotations

from locust import LoadTestShape

from bench.surge.profile import Profile, parse


def profile_of(options: object) -> Profile:
    """The profile the orchestrator asked for, from Locust's parsed options."""
    return parse(
        options.surge_profile,  # type: ignore[attr-defined]
        options.surge_users,  # type: ignore[attr-defined]
        options.surge_duration,  # type: ignore[attr-defined]
        options.surge_spawn_rate,  # type: ignore[attr-defined]
    )


class SurgeShape(LoadTestShape):
    """Users and spawn rate for the current second; None ends the run."""

    _profile: Profile | None = None

    def tick(self) -> tuple[int, float] | None:
        if self._profile is None:
            self._profile = profile_of(self.runner.environment.parsed_options)
        stage = self._profile.at(self.get_run_time())
        return None if stage is None else (stage.users, stage.spawn_rate)
