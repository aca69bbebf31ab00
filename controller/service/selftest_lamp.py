"""`irlamp selftest`, last step: the sensors under the lamp's own light (SR-15).

The distance sensor looks at the person through the lamp's light, and a tungsten heat
lamp radiates strongly at 940 nm, the VL53L0X's own laser wavelength; the MLX90614 sits
next to a few hundred watts. Whether an installation works can only be seen with the
lamp on. This step, only after the person types "yes" and while they are in the band:

1. reads both sensors for BASELINE_S with the lamp off;
2. presses a simulated button on a real `SafetyController` built from the config, so the
   lamp is switched by the same decision the daemon uses - every rule active (distance
   band, doubt, stale/frozen/unreliable, skin limit, sensor body) - for at most
   `lamp_s` seconds (never more than LAMP_TEST_MAX_S), then switches it off;
3. reports per sensor, lamp off against lamp on: the share of valid distance samples,
   their noise, the ambient and signal rates, the skin reading's rise and the sensor
   body's rise - with a verdict (good / marginal / not usable) and what to change.

The relay is off at the end whatever happens (exception, Ctrl-C). The daily limits are
not consulted: it is a short, attended test, not a session, and it is not journaled.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

from controller.core.limits import Allowance
from controller.core.readings import Sample, SensorFeed
from controller.core.safety import SafetyController, StepInputs
from controller.service.readout import Readout
from drivers.relay import switch_pair
from drivers.sampler import classify

LAMP_TEST_MAX_S = 30.0
DEFAULT_LAMP_S = 20.0
BASELINE_S = 5.0
PRESS_S = 0.2
RELEASE_S = 0.15
SKIN_EVERY = 8  # a skin reading every 8th distance sample (~250 ms at 33 ms)
GOOD_DOUBT_SHARE = 0.01  # more doubted samples than this with the lamp on: marginal
BODY_RATE_MARGINAL_C_PER_MIN = 0.5
SKIN_RISE_MIN_C = 0.1
ALLOWED = Allowance(True, None, 0, None, None)

GOOD, MARGINAL, NOT_USABLE = "good", "marginal", "not usable"

LAMP_PROMPT = (
    "Now the lamp itself, with every safety rule active. Plug the lamp in, lie or sit in "
    "front of it at {band}, then type yes to light it for {seconds:g} s: "
)

DISTANCE_ADVICE = (
    "shade the VL53L0X from the bulb: an opaque hood or short tube around its window, so that "
    "only light from straight ahead reaches it",
    "the hood must block infrared: the bulb's light at 940 nm is the sensor's own wavelength, "
    "so a visible-light filter or a thin 3D-printed part does not help - black metal or thick "
    "black plastic does",
    "angle the sensor so it sees the person, not the reflector, the guard or the bulb's glow",
    "mount it farther from the bulb: on the reflector's rim or outside it, not beside the glass",
)
SKIN_BODY_ADVICE = (
    "put a heat shield (polished aluminium) between the bulb and the thermometer's body and "
    "mount it beside the lamp head, out of the beam",
    "use the MLX90614's medical-accuracy variant (the DCI type): it compensates the "
    "temperature difference across its own package that a heated body causes",
)
SKIN_AIM_ADVICE = ("aim the thermometer at the centre of the lit skin: its reading should rise while the lamp is on",)

Say = Callable[[str], None]


@dataclass
class PhaseStats:
    """What one sensor delivered during one phase (lamp off or lamp on)."""

    samples: int = 0
    doubted: int = 0
    failed: int = 0
    distances_mm: list[float] = field(default_factory=list)
    ambient_mcps: list[float] = field(default_factory=list)
    signal_mcps: list[float] = field(default_factory=list)
    skin_c: list[float] = field(default_factory=list)
    body_c: list[float] = field(default_factory=list)

    def add_distance(self, sample: Sample) -> None:
        self.samples += 1
        if sample.error == "unreliable":
            self.doubted += 1
        elif sample.error is not None:
            self.failed += 1
        elif sample.value is not None:
            self.distances_mm.append(sample.value)
        if sample.ambient_rate_mcps is not None:
            self.ambient_mcps.append(sample.ambient_rate_mcps)
            if sample.signal_rate_mcps is not None:
                self.signal_mcps.append(sample.signal_rate_mcps)

    def add_skin(self, sample: Sample) -> None:
        if sample.error is None and sample.value is not None:
            self.skin_c.append(sample.value)
            if sample.ambient_c is not None:
                self.body_c.append(sample.ambient_c)

    @property
    def valid_share(self) -> float:
        return len(self.distances_mm) / self.samples if self.samples else 0.0

    @property
    def doubt_share(self) -> float:
        return self.doubted / self.samples if self.samples else 0.0

    @property
    def noise_mm(self) -> float:
        return statistics.pstdev(self.distances_mm) if len(self.distances_mm) > 1 else 0.0


@dataclass
class SensorVerdict:
    sensor: str
    grade: str
    reasons: list[str]
    advice: tuple[str, ...] = ()


@dataclass
class LampTest:
    off: PhaseStats = field(default_factory=PhaseStats)
    on: PhaseStats = field(default_factory=PhaseStats)
    on_s: float = 0.0
    faults: list[str] = field(default_factory=list)
    refused: str | None = None


class _Rig:
    """Reads both sensors into Samples and steps the controller, switching the relay."""

    def __init__(self, distance_source, skin_source, outputs, cfg, monotonic):
        self.distance_source, self.skin_source = distance_source, skin_source
        self.outputs, self.monotonic = outputs, monotonic
        self.ctl = SafetyController(cfg, monotonic())
        self.readout = Readout()
        self.seq = 0
        self.skin_sample: Sample | None = None
        self.lamp_on = False
        self.test = LampTest()

    def step(self, button: bool) -> None:
        self.seq += 1
        phase = self.test.on if self.lamp_on else self.test.off
        distance = self._read(self.distance_source.read_distance)
        phase.add_distance(distance)
        if self.seq % SKIN_EVERY == 1:
            self.skin_sample = self._read(self.skin_source.read_skin)
            phase.add_skin(self.skin_sample)
        now = self.monotonic()
        was_on = self.lamp_on
        decision = self.ctl.step(StepInputs(now, SensorFeed(distance), SensorFeed(self.skin_sample), button, ALLOWED))
        self.readout.observe(decision, now)
        for name, fields in decision.events:
            if name == "fault":
                self.test.faults.append(fields["code"])
            elif name == "start_refused":
                self.test.refused = fields["reason"]
        self._switch(decision.lamp_on)
        if was_on:
            self.test.on_s = self.ctl.session.on_s if self.ctl.session else self.test.on_s

    def _read(self, read) -> Sample:
        value = ambient_c = rates = None
        error, detail = None, ""
        try:
            reading = read()
        except Exception as exc:  # noqa: BLE001 - every failure is a sample the controller judges
            error, detail, rates = classify(exc), f"{type(exc).__name__}: {exc}", getattr(exc, "rates", None)
        else:
            if hasattr(reading, "distance_mm"):
                value, rates = reading.distance_mm, reading.rates
            else:
                value, ambient_c = reading.skin_c, reading.ambient_c
        return Sample(
            self.seq,
            self.monotonic(),
            value,
            ambient_c,
            error,
            detail,
            None if rates is None else rates.signal_rate_mcps,
            None if rates is None else rates.ambient_rate_mcps,
        )

    def _switch(self, on: bool) -> None:
        if on == self.lamp_on:
            return
        self.lamp_on = on
        switch_pair(self.outputs.get("relay"), self.outputs.get("enable_relay"), on)


def lamp_off(outputs: dict) -> None:
    """Main relay first, then the enable relay - each attempted even if the other fails."""
    switch_pair(outputs.get("relay"), outputs.get("enable_relay"), False)


def run_lamp_test(
    distance_source,
    skin_source,
    outputs: dict,
    cfg,
    *,
    ask,
    say: Say,
    monotonic: Callable[[], float],
    lamp_s: float = DEFAULT_LAMP_S,
) -> list[SensorVerdict] | None:
    """The lamp-on test; None when it was skipped (no yes, nobody in the band, start refused)."""
    lamp_s = min(max(lamp_s, 1.0), LAMP_TEST_MAX_S)
    d = cfg.distance
    band = f"{(d.min_mm + d.hysteresis_mm) / 25.4:.0f}-{d.max_mm / 25.4:.0f} in from the lamp face"
    try:
        answer = ask(LAMP_PROMPT.format(band=band, seconds=lamp_s))
    except EOFError:
        answer = ""
    if answer != "yes":
        say("Lamp test skipped (you did not type yes).")
        return None
    rig = _Rig(distance_source, skin_source, outputs, cfg, monotonic)
    try:
        say(f"Reading both sensors for {BASELINE_S:g} s with the lamp off ...")
        _steps_for(rig, BASELINE_S, button=False)
        _steps_for(rig, PRESS_S, button=True)
        _steps_for(rig, RELEASE_S, button=False)
        if rig.ctl.session is None:
            reason = rig.test.refused or (rig.test.faults[0] if rig.test.faults else "no start")
            say(f"Lamp test not run: the safety rules refused the start ({reason.replace('_', ' ')}).")
            if reason in ("too_close", "out_of_band"):
                say(f"  be at {band}; the sensor measured {_mm(rig.readout.distance_mm)}")
            return None
        say(f"Lamp ON for up to {lamp_s:g} s (every safety rule active; Ctrl-C stops it) ...")
        started = monotonic()
        while monotonic() - started < lamp_s and rig.ctl.session is not None:
            rig.step(button=False)
    finally:
        lamp_off(outputs)
    say("Lamp OFF." + (f" The safety rules stopped it: {', '.join(rig.test.faults)}" if rig.test.faults else ""))
    verdicts = [distance_verdict(rig.test, cfg), skin_verdict(rig.test, cfg)]
    report(rig.test, verdicts, say)
    return verdicts


def _steps_for(rig: _Rig, seconds: float, button: bool) -> None:
    start = rig.monotonic()
    while rig.monotonic() - start < seconds:
        rig.step(button)


def _mm(value: float | None) -> str:
    return "nothing" if value is None else f"{value:.0f} mm ({value / 25.4:.1f} in)"


# --- verdicts -----------------------------------------------------------------------------


def distance_verdict(test: LampTest, cfg) -> SensorVerdict:
    off, on = test.off, test.on
    if on.samples == 0:
        return SensorVerdict("distance", NOT_USABLE, ["the lamp never came on"], DISTANCE_ADVICE)
    d, f = cfg.distance, cfg.faults
    ambient_max = max(on.ambient_mcps, default=0.0)
    bad, doubtful = [], []
    if "distance_unreliable" in test.faults:
        bad.append("the safety rules latched distance_unreliable")
    if on.doubt_share > f.distance_unreliable_share:
        bad.append(
            f"{100 * on.doubt_share:.1f} % of measurements untrustworthy with the lamp on "
            f"(the daemon faults above {100 * f.distance_unreliable_share:g} %)"
        )
    elif on.doubt_share > GOOD_DOUBT_SHARE:
        doubtful.append(
            f"{100 * on.doubt_share:.1f} % of measurements untrustworthy with the lamp on: "
            f"each one switches the lamp off for a moment (relay wear)"
        )
    if ambient_max >= d.ambient_doubt_mcps:
        bad.append(f"ambient light {ambient_max:.2f} Mcps reaches the doubt level ({d.ambient_doubt_mcps:g})")
    elif ambient_max >= d.ambient_warn_mcps:
        doubtful.append(f"ambient light {ambient_max:.2f} Mcps is at the warning level ({d.ambient_warn_mcps:g})")
    if on.noise_mm > max(2.0 * off.noise_mm, off.noise_mm + 3.0):
        doubtful.append(f"distance noise grows from {off.noise_mm:.1f} mm to {on.noise_mm:.1f} mm")
    grade = NOT_USABLE if bad else MARGINAL if doubtful else GOOD
    return SensorVerdict(
        "distance",
        grade,
        bad + doubtful or ["the lamp's light does not disturb it"],
        DISTANCE_ADVICE if grade != GOOD else (),
    )


def skin_verdict(test: LampTest, cfg) -> SensorVerdict:
    before = test.off.skin_c[-1:] or test.on.skin_c[:1]
    body_before = test.off.body_c[-1:] or test.on.body_c[:1]
    if not test.on.skin_c or not before:
        return SensorVerdict("skin", NOT_USABLE, ["no skin reading with the lamp on"], SKIN_AIM_ADVICE)
    skin_rise_c = max(test.on.skin_c) - before[0]
    body_rise_c = test.on.body_c[-1] - body_before[0]
    minutes = max(test.on_s, 1.0) / 60.0
    rate_c_per_min = body_rise_c / minutes
    projected_c = body_before[0] + max(rate_c_per_min, 0.0) * cfg.session.max_on_minutes
    bad: list[str] = []
    doubtful: list[str] = []
    advice: tuple[str, ...] = ()
    if "skin_sensor_hot" in test.faults or projected_c >= cfg.skin.sensor_body_max_c:
        bad.append(
            f"its body warms {rate_c_per_min:.1f} °C/min: about {projected_c:.0f} °C after a "
            f"full session, over the {cfg.skin.sensor_body_max_c:g} °C limit"
        )
        advice = SKIN_BODY_ADVICE
    elif rate_c_per_min >= BODY_RATE_MARGINAL_C_PER_MIN:
        doubtful.append(
            f"its body warms {rate_c_per_min:.1f} °C/min (about {projected_c:.0f} °C after a "
            f"full session): a package heated from one side reads the skin wrong"
        )
        advice = SKIN_BODY_ADVICE
    if skin_rise_c < SKIN_RISE_MIN_C:
        doubtful.append(f"the skin reading rose only {skin_rise_c:.2f} °C under the lamp")
        advice = advice + SKIN_AIM_ADVICE
    grade = NOT_USABLE if bad else MARGINAL if doubtful else GOOD
    return SensorVerdict("skin", grade, bad + doubtful or ["its body stays cool and the skin reading rises"], advice)


def report(test: LampTest, verdicts: list[SensorVerdict], say: Say) -> None:
    off, on = test.off, test.on

    def mean(values: list[float], unit: str, digits: int = 2) -> str:
        return f"{statistics.fmean(values):.{digits}f} {unit}" if values else "-"

    say("Distance sensor (VL53L0X)         lamp off        lamp on")
    say(
        f"  valid measurements          {100 * off.valid_share:7.1f} %      {100 * on.valid_share:7.1f} %"
        f"   ({off.samples} / {on.samples} samples)"
    )
    say(f"  flagged untrustworthy       {100 * off.doubt_share:7.1f} %      {100 * on.doubt_share:7.1f} %")
    say(f"  noise (standard deviation)  {off.noise_mm:7.1f} mm     {on.noise_mm:7.1f} mm")
    say(
        f"  ambient light               {mean(off.ambient_mcps, 'Mcps'):>12}  {mean(on.ambient_mcps, 'Mcps'):>12}"
        f"   (max {max(on.ambient_mcps, default=0.0):.2f})"
    )
    say(f"  signal (the laser's return) {mean(off.signal_mcps, 'Mcps'):>12}  {mean(on.signal_mcps, 'Mcps'):>12}")
    skin_before = off.skin_c[-1:] or on.skin_c[:1]
    body_before = off.body_c[-1:] or on.body_c[:1]
    say("Skin thermometer (MLX90614)")
    if skin_before and on.skin_c:
        say(
            f"  skin reading   {skin_before[0]:.2f} °C -> {max(on.skin_c):.2f} °C "
            f"(+{max(on.skin_c) - skin_before[0]:.2f} °C in {test.on_s:.0f} s of heat)"
        )
        say(
            f"  sensor body    {body_before[0]:.2f} °C -> {on.body_c[-1]:.2f} °C "
            f"(+{on.body_c[-1] - body_before[0]:.2f} °C)"
        )
    for verdict in verdicts:
        label = "Distance sensor" if verdict.sensor == "distance" else "Skin thermometer"
        say(f"VERDICT {label}: {verdict.grade.upper()} - {'; '.join(verdict.reasons)}")
        for line in verdict.advice:
            say(f"  - {line}")
