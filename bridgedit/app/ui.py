"""The web app's page (Gradio): three tabs over one Studio — text to sounding video, sound for a video, video for a
sound — and one results panel: the clip, its sync picture, the `bridgedit generate` command that makes it again, its
parameters, its files, and a gallery of this session's clips.

Every Generate button shares one queue slot ("device"): a second job waits and Gradio shows its place. Bad input
becomes a message in the page (gr.Error); the server keeps serving.
"""

# no `from __future__ import annotations`: Gradio reads gr.Request / gr.SelectData parameters from live annotations
import logging
import os
import time

from ..config import HOLD_MODES, ConfigError
from .studio import JobCancelled, Request, Result, Studio

logger = logging.getLogger(__name__)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local app

TITLE = "bridgedit — sounding videos from text"
INTRO = (
    "Write what is **seen** and what is **heard** as two captions (the paper's HVGC style), or give a video or a "
    "sound and generate the other stream next to it. Each result shows its sound's spectrogram under its frames, every "
    "frame's time ticked, motion peaks and sound onsets marked, and the command that makes it again."
)


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise ConfigError("the web app needs Gradio: pip install -e '.[app]'") from None
    return gr


def build_app(studio: Studio):
    """The Gradio Blocks of the app over `studio` (not launched)."""
    gr = _gradio()
    defaults, limits = studio.defaults, studio.limits
    generate_events = []

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        results_state = gr.State([])  # this session's Result records, newest first

        def settings_controls(prefix: str, held: bool) -> list:
            """Seed, steps, both guidance scales, size and frame count (and the hold, for a given stream): the model's
            own defaults filled in, the model's limits as the sliders' ends."""
            with gr.Accordion("Settings", open=False, elem_id=f"{prefix}-settings"):
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, label="seed", elem_id=f"{prefix}-seed")
                    steps = gr.Slider(
                        1,
                        limits.max_steps,
                        value=defaults.num_inference_steps,
                        step=1,
                        label="steps",
                        elem_id=f"{prefix}-steps",
                    )
                with gr.Row():
                    video_guidance = gr.Slider(0, 15, value=defaults.video_guidance, step=0.1, label="video guidance")
                    audio_guidance = gr.Slider(0, 15, value=defaults.audio_guidance, step=0.1, label="audio guidance")
                with gr.Row():
                    height = gr.Slider(16, limits.max_height, value=defaults.height, step=16, label="height")
                    width = gr.Slider(16, limits.max_width, value=defaults.width, step=16, label="width")
                    frames = gr.Slider(1, limits.max_frames, value=defaults.num_frames, step=4, label="frames (4k+1)")
                hold = gr.Dropdown(
                    list(HOLD_MODES),
                    value=studio.pipe.generation_defaults.get("hold", "clean"),
                    label="how the given stream is held",
                    info="clean: at noise level 0 (models trained with independent noise levels, as the demo model); "
                    "renoised: noised to each step's level (the paper's and the released models)",
                    visible=held,
                )
            return [seed, steps, video_guidance, audio_guidance, height, width, frames, hold]

        def buttons(prefix: str):
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id=f"{prefix}-generate")
                cancel = gr.Button("Cancel", variant="stop", elem_id=f"{prefix}-cancel")
            return generate, cancel

        with gr.Tabs():
            with gr.Tab("Text to sounding video", id="text"):
                with gr.Row(visible=studio.rewriter is not None):
                    one_prompt = gr.Textbox(label="one prompt", scale=4, elem_id="one-prompt")
                    rewrite = gr.Button("Write the two captions", scale=1, elem_id="rewrite")
                text_video_prompt = gr.Textbox(label="video caption (what is seen)", lines=2, elem_id="text-video")
                text_audio_prompt = gr.Textbox(label="audio caption (what is heard)", lines=2, elem_id="text-audio")
                text_settings = settings_controls("text", held=False)
                text_generate, text_cancel = buttons("text")
            with gr.Tab("Sound for a video", id="sound_for_video"):
                given_video = gr.Video(sources=["upload"], label="the video", height=280, elem_id="given-video")
                v2a_audio_prompt = gr.Textbox(label="audio caption (the sound to make)", lines=2, elem_id="v2a-audio")
                v2a_video_prompt = gr.Textbox(label="video caption (optional)", lines=1, elem_id="v2a-video")
                v2a_settings = settings_controls("v2a", held=True)
                v2a_generate, v2a_cancel = buttons("v2a")
            with gr.Tab("Video for a sound", id="video_for_sound"):
                given_audio = gr.Audio(sources=["upload"], type="filepath", label="the sound", elem_id="given-audio")
                a2v_video_prompt = gr.Textbox(label="video caption (the video to make)", lines=2, elem_id="a2v-video")
                a2v_audio_prompt = gr.Textbox(label="audio caption (optional)", lines=1, elem_id="a2v-audio")
                a2v_settings = settings_controls("a2v", held=True)
                a2v_generate, a2v_cancel = buttons("a2v")

        status = gr.Markdown(elem_id="status")
        with gr.Row():
            with gr.Column(scale=1):
                result_video = gr.Video(label="result", interactive=False, height=320, elem_id="result-video")
                result_files = gr.File(label="download (.mp4, .wav)", file_count="multiple", interactive=False)
            with gr.Column(scale=2):
                result_picture = gr.Image(label="sync picture", interactive=False, elem_id="result-picture")
                result_command = gr.Textbox(
                    label="the same clip from the command line",
                    lines=3,
                    interactive=False,
                    buttons=["copy"],
                    elem_id="command",
                )
                result_parameters = gr.JSON(label="parameters", max_height=260, elem_id="parameters")
        gallery = gr.Gallery(
            label="this session's clips (select one to show it again)",
            columns=6,
            height=200,
            allow_preview=False,
            object_fit="contain",
            elem_id="gallery",
        )
        result_outputs = [result_video, result_picture, result_command, result_parameters, result_files]

        def show(result: Result) -> list:
            return [result.video, result.picture, result.command, result.parameters, [result.video, result.wav]]

        def runner(mode: str):
            def run(
                video_prompt,
                audio_prompt,
                video,
                audio,
                seed,
                steps,
                video_guidance,
                audio_guidance,
                height,
                width,
                frames,
                hold,
                results,
                request: gr.Request,
                progress=gr.Progress(),  # noqa: B008 (Gradio's way: a default it replaces per call)
            ):
                start = time.monotonic()
                session = request.session_hash if request is not None else ""
                progress(0, desc="encoding the captions")
                try:
                    result = studio.generate(
                        Request(
                            mode=mode,
                            video_prompt=video_prompt or "",
                            audio_prompt=audio_prompt or "",
                            video=video,
                            audio=audio,
                            seed=int(seed or 0),
                            num_inference_steps=int(steps),
                            video_guidance=float(video_guidance),
                            audio_guidance=float(audio_guidance),
                            height=int(height),
                            width=int(width),
                            num_frames=int(frames),
                            hold=hold if mode != "text" else None,
                        ),
                        session,
                        on_step=lambda done, total: progress((done, total), desc="sampling"),
                    )
                except (ValueError, FileNotFoundError) as error:  # ConfigError, MediaError: the user's to fix
                    raise gr.Error(str(error), print_exception=False) from None
                except JobCancelled as error:
                    raise gr.Error(f"Cancelled: {error}", title="Cancelled", print_exception=False) from None
                except Exception as error:  # the server keeps serving; the log has the traceback
                    logger.exception("generation failed")
                    raise gr.Error(f"generation failed ({type(error).__name__}: {error})") from None
                results = [result, *results]
                seconds = time.monotonic() - start
                message = f"Made in {seconds:.1f} s · AV-Align {result.av_align:.2f} · `{mode}` · seed {result.parameters['seed']}"
                gallery_items = [(r.picture, r.caption()) for r in results]  # each clip by its sync picture
                return [*show(result), gallery_items, results, message]

            return run

        outputs = [*result_outputs, gallery, results_state, status]
        empty = gr.State(None)
        for mode, generate, cancel, inputs in (  # inputs in `run`'s order
            ("text", text_generate, text_cancel, [text_video_prompt, text_audio_prompt, empty, empty, *text_settings]),
            (
                "sound_for_video",
                v2a_generate,
                v2a_cancel,
                [v2a_video_prompt, v2a_audio_prompt, given_video, empty, *v2a_settings],
            ),
            (
                "video_for_sound",
                a2v_generate,
                a2v_cancel,
                [a2v_video_prompt, a2v_audio_prompt, empty, given_audio, *a2v_settings],
            ),
        ):
            event = generate.click(
                runner(mode),
                inputs=[*inputs, results_state],
                outputs=outputs,
                concurrency_limit=1,
                concurrency_id="device",
                api_name=mode,
            )
            generate_events.append(event)
            cancel.click(_cancel(studio, gr), inputs=None, outputs=status, cancels=[event], queue=False)

        def select(results: list[Result], selected: gr.SelectData):
            return show(results[selected.index])

        gallery.select(select, inputs=results_state, outputs=result_outputs, queue=False)

        def write_captions(prompt: str):
            try:
                return studio.rewrite(prompt)
            except (ValueError, OSError) as error:
                raise gr.Error(str(error), print_exception=False) from None

        rewrite.click(write_captions, inputs=one_prompt, outputs=[text_video_prompt, text_audio_prompt])
    return app


def _cancel(studio: Studio, gr):
    def cancel(request: gr.Request):
        session = request.session_hash if request is not None else ""
        if studio.cancel(session):
            return "Cancelling: the job stops after its current step."
        return "Cancelled."

    return cancel


def launch(studio: Studio, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True):
    """Serve the app: Gradio's queue (one job on the device at a time), local only unless `share`. Returns
    (app, local URL)."""
    app = build_app(studio)
    app.queue(default_concurrency_limit=1, max_size=64)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        allowed_paths=[str(studio.out_dir)],
        prevent_thread_lock=not block,
        quiet=not block,
    )
    return app, url
