"""Objects that bounce on a floor, or lamps that flash, at random times; every event makes a sound whose
character follows the object's material (a lamp: an electric beep), over an optional ambience (a low hum or
soft rain). Deterministic from a seed. Event times are never stated in the captions, so the only way a model
can put sound and event together is by letting the two towers talk.

A clip is written exactly as `bridgedit prepare` writes one (clips/<id>.mp4 + .wav, a manifest record), plus
"events" (impact times in seconds) and the scene's attributes, so cache -> train -> generate -> evaluate run
on it unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import remove_stale_temporaries, write_text_atomic
from ..config import ConfigError
from ..data.manifest import CLIPS_DIR, MANIFEST_NAME, SETTINGS_NAME
from ..jsonl import write_jsonl
from ..media import ClipStandard, write_sounding_video, write_wav

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230), "yellow": (235, 210, 40)}
BACKGROUNDS = {"gray": (90, 90, 95), "beige": (200, 185, 150), "dark": (25, 25, 40)}
BOUNCING_SHAPES = ("ball", "cube")
LAMP = "lamp"  # a diamond that lights up for FLASH_SECONDS at each event, in mid-air; dark otherwise
SHAPES = BOUNCING_SHAPES + (LAMP,)
FLASH_SECONDS = 0.12
# material -> (fundamental Hz, decay s, noise share, how it sounds); a lamp's "material" is electric
MATERIALS = {
    "rubber": (180.0, 0.05, 0.15, "a dull, soft thud"),
    "wood": (520.0, 0.04, 0.35, "a hollow wooden knock"),
    "metal": (1_150.0, 0.35, 0.05, "a bright metallic clang that rings on"),
    "electric": (800.0, FLASH_SECONDS, 0.0, "a short electric beep"),
}
BOUNCING_MATERIALS = ("rubber", "wood", "metal")
# ambience -> how the audio caption names it (heard only: never in the visual caption)
AMBIENCES = {"none": "", "hum": "A low hum runs underneath.", "rain": "Soft rain falls in the background."}
AMBIENCE_LEVEL = 0.02  # peak of the ambience (the hum half of it), against 0.6 for an event: events stay well above it


@dataclass(frozen=True)
class WorldSettings:
    height: int = 64
    width: int = 64
    seconds: float = 17 / 15  # 17 frames at 15 fps: Wan's 4k+1
    fps: float = 15.0
    sample_rate: int = 4_000  # the tiny audio VAE's rate
    max_events: int = 3
    # a ball's edge anti-aliased (each pixel coloured by how much of it the disc covers): round at any size, where a
    # hard edge makes a small disc a blocky patch; the first demo world (False) had hard edges
    smooth_edges: bool = False

    def __post_init__(self) -> None:
        _ = self.standard  # ClipStandard's checks: a positive finite length and rate, even sizes, a sample rate
        if self.max_events < 1:
            raise ConfigError(f"max events must be 1 or more; got {self.max_events}")

    @property
    def standard(self) -> ClipStandard:
        return ClipStandard(
            seconds=self.seconds,
            fps=self.fps,
            height=self.height,
            width=self.width,
            sample_rate=self.sample_rate,
            min_seconds=self.seconds,
        )


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    material: str
    background: str
    size: float  # radius as a fraction of the frame height
    x: float  # horizontal centre, fraction of the width
    events: tuple[float, ...]  # impact times, seconds

    ambience: str = "none"

    def captions(self) -> dict[str, str]:
        sound = MATERIALS[self.material][3]
        heard = f"{sound[0].upper()}{sound[1:]}"
        ambience = AMBIENCES[self.ambience]
        if self.shape == LAMP:
            video = f"A {self.colour} lamp flashes on and off above a {self.background} floor."
            audio = f"{heard}, repeated each time a lamp flashes."
            shared = f"A {self.colour} lamp flashes above a {self.background} floor with {sound}."
        else:
            video = f"A {self.colour} {self.material} {self.shape} bounces up and down on a {self.background} floor."
            audio = f"{heard}, repeated each time a {self.material} object hits the floor."
            shared = f"A {self.colour} {self.material} {self.shape} bounces on a {self.background} floor with {sound}."
        if ambience:
            audio, shared = f"{audio} {ambience}", f"{shared} {ambience}"
        return {"video": video, "audio": audio, "shared": shared}


def draw_scene(rng: np.random.Generator, settings: WorldSettings) -> Scene:
    count = int(rng.integers(1, settings.max_events + 1))
    # events at least 0.3 s apart (4.5 frames: two touchdowns never blur into one arc), after 0.1 s, and no later than the last frame (so every flash is seen)
    last_frame = (settings.standard.num_frames - 1) / settings.fps
    while True:
        events = np.sort(rng.uniform(0.1, last_frame, size=count))
        if count == 1 or np.min(np.diff(events)) >= 0.3:
            break
    shape = str(rng.choice(SHAPES))
    material = "electric" if shape == LAMP else str(rng.choice(BOUNCING_MATERIALS))
    return Scene(
        shape=shape,
        colour=str(rng.choice(list(COLOURS))),
        material=material,
        background=str(rng.choice(list(BACKGROUNDS))),
        size=float(rng.uniform(0.08, 0.15)),
        x=float(rng.uniform(0.3, 0.7)),
        events=tuple(round(float(t), 4) for t in events),
        ambience=str(rng.choice(list(AMBIENCES))),
    )


def _height_above_floor(t: np.ndarray, events: tuple[float, ...], seconds: float) -> np.ndarray:
    """0 at each impact, parabolic arcs between impacts (and before the first / after the last)."""
    marks = [-(events[0])] + list(events) + [2 * seconds - events[-1]]
    height = np.zeros_like(t)
    for a, b in zip(marks[:-1], marks[1:]):
        inside = (t >= a) & (t <= b)
        height[inside] = 4 * (t[inside] - a) * (b - t[inside]) / (b - a) ** 2 * min(1.0, (b - a) / 0.6)
    return height


def render_clip(scene: Scene, settings: WorldSettings, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(frames (F, H, W, 3) uint8, audio (samples,) float32 mono)."""
    standard = settings.standard
    h, w = settings.height, settings.width
    floor = int(0.85 * h)
    radius = max(2.0, scene.size * h)
    rows, cols = np.mgrid[0:h, 0:w]
    times = np.arange(standard.num_frames) / settings.fps
    frames = np.empty((standard.num_frames, h, w, 3), np.uint8)
    if scene.shape == LAMP:  # fixed in mid-air, high enough never to look like a touchdown
        centres = [(0.4 * h, scene.x * w)] * len(times)
        visible = [any(0 <= time - event < FLASH_SECONDS for event in scene.events) for time in times]
    else:
        lift = _height_above_floor(times, scene.events, settings.seconds)
        centres = [(floor - radius - up * (floor - 2 * radius - 2), scene.x * w) for up in lift]
        visible = [True] * len(times)
    for i, ((cy, cx), shown) in enumerate(zip(centres, visible)):
        frame = np.empty((h, w, 3), np.uint8)
        frame[:] = BACKGROUNDS[scene.background]
        frame[floor:] = np.array(BACKGROUNDS[scene.background]) // 2 + 40
        if shown and scene.shape == "ball" and settings.smooth_edges:
            distance = np.sqrt((rows + 0.5 - cy) ** 2 + (cols + 0.5 - cx) ** 2)  # from each pixel's centre
            cover = np.clip(radius + 0.5 - distance, 0.0, 1.0)[..., None]  # (H, W, 1): 1 inside, 0 outside
            frame[:] = np.rint(frame * (1 - cover) + np.array(COLOURS[scene.colour]) * cover).astype(np.uint8)
        elif shown:
            if scene.shape == "ball":
                mask = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
            elif scene.shape == "cube":
                mask = (np.abs(rows - cy) <= radius) & (np.abs(cols - cx) <= radius)
            else:  # the lamp: a diamond
                mask = np.abs(rows - cy) + np.abs(cols - cx) <= radius
            frame[mask] = COLOURS[scene.colour]
        frames[i] = frame
    return frames, _render_audio(scene, settings, rng)


def _render_audio(scene: Scene, settings: WorldSettings, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(settings.standard.num_samples) / settings.sample_rate
    audio = 0.003 * rng.standard_normal(len(t))  # faint room noise
    if scene.ambience == "hum":  # 100 + 300 Hz: whole half-periods in the onset detector's 5 ms window, so steady
        audio += 0.5 * AMBIENCE_LEVEL * (np.sin(2 * np.pi * 100 * t) + 0.3 * np.sin(2 * np.pi * 300 * t)) / 1.3
    elif scene.ambience == "rain":  # white noise through a gentle low-pass: a soft hiss
        hiss = np.convolve(rng.standard_normal(len(t)), np.ones(3) / 3, mode="same")
        audio += AMBIENCE_LEVEL * hiss / np.abs(hiss).max()
    frequency, decay, noise_share, _ = MATERIALS[scene.material]
    ends = list(scene.events[1:]) + [np.inf]
    for event, end in zip(scene.events, ends):
        since = t - event
        on = (since >= 0) & (t < end)  # a new impact restarts the object's vibration: the old ring stops
        if scene.shape == LAMP:  # a steady beep for as long as the lamp is lit
            on &= since < decay
            envelope = np.minimum(1.0, since[on] / 0.002)  # a 2 ms attack: no click beyond the onset itself
            tone = np.sin(2 * np.pi * frequency * since[on]) + 0.3 * np.sin(2 * np.pi * 3 * frequency * since[on])
        else:
            envelope = np.exp(-since[on] / decay)
            tone = np.sin(2 * np.pi * frequency * since[on]) + 0.5 * np.sin(2 * np.pi * 2.7 * frequency * since[on])
        burst = rng.standard_normal(on.sum()) * np.exp(-since[on] / 0.01)
        audio[on] += 0.6 * envelope * ((1 - noise_share) * tone / 1.5 + noise_share * burst)
    return np.clip(audio, -1, 1).astype(np.float32)


def make_dataset(
    out: str | Path, clips: int = 16, seed: int = 0, test_clips: int = 0, progress: bool = False, **settings
) -> Path:
    """Write `clips` sounding clips and a manifest in the format `bridgedit prepare` writes."""
    world = WorldSettings(**settings)
    if clips < 1:
        raise ConfigError(f"clips must be 1 or more; got {clips}")
    if not 0 <= test_clips <= clips:
        raise ConfigError(f"test clips must be from 0 to the {clips} clips; got {test_clips}")
    if seed < 0:
        raise ConfigError(f"seed must be 0 or more; got {seed}")
    out = Path(out)
    (out / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out / CLIPS_DIR)  # a run killed mid-write: every clip is written again below
    records = []
    for index in tqdm(range(clips), desc="synthetic clips", disable=not progress):
        rng = np.random.default_rng([seed, index])
        scene = draw_scene(rng, world)
        frames, audio = render_clip(scene, world, rng)
        clip_id = f"clip{index:05d}"
        write_wav(out / CLIPS_DIR / f"{clip_id}.wav", audio[None], world.sample_rate, subtype="PCM_16")
        write_sounding_video(out / CLIPS_DIR / f"{clip_id}.mp4", frames, world.fps, audio[None], world.sample_rate)
        records.append(
            {
                "id": clip_id,
                "path": f"{CLIPS_DIR}/{clip_id}.mp4",
                "audio_path": f"{CLIPS_DIR}/{clip_id}.wav",
                "source": f"synthetic:{seed}:{index}",
                "source_start": None,
                "source_end": None,
                "start": 0.0,
                "duration": world.seconds,
                "padded_seconds": 0.0,
                "split": "test" if index >= clips - test_clips else "train",
                "given_split": True,
                "label": f"{scene.material} {scene.shape}",
                "captions": scene.captions(),
                "fps": world.fps,
                "width": world.width,
                "height": world.height,
                "sample_rate": world.sample_rate,
                "events": list(scene.events),
                "scene": asdict(scene),
            }
        )
    write_text_atomic(out / SETTINGS_NAME, json.dumps({"synthetic": asdict(world), "seed": seed}, indent=2))
    write_jsonl(out / MANIFEST_NAME, records)  # last: the manifest marks the dataset complete
    return out
