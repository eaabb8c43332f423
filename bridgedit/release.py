"""Facts of the authors' release (GitHub guankaisi/BridgeDiT, hub Guan123/BridgeDiT; ../shared/official-release.md)
and the hub ids of the pretrained towers it bridges: names and numbers only, so that the CLI shows them in its help
without importing torch. `bridgedit.official` converts the release's checkpoints with them."""

#: the pretrained towers (§3.1): Wan 2.1 T2V 1.3B and Stable Audio Open 1.0, as diffusers pipelines on the hub
WAN_T2V_1_3B = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
STABLE_AUDIO_OPEN_1_0 = "stabilityai/stable-audio-open-1.0"

#: the release's names of bridgedit's fusion kinds (its `train_config.fusion_type`)
RELEASE_FUSION_NAMES = {"dca": "bicross", "full_attention": "full_attn", "v2a": "v2a", "a2v": "a2v", "additive": "add"}
RELEASE_VIDEO_BRIDGE_POINTS = (3, 7, 11, 15)
RELEASE_AUDIO_BRIDGE_POINTS = (2, 5, 8, 11)
RELEASE_NUM_HEADS = 12

#: the release's inference negative prompts (`infer.py`): Wan's standard one for video, its own for audio
RELEASE_NEGATIVE_VIDEO_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, overall "
    "gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands, "
    "poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy background, three "
    "legs, many people in the background, walking backwards"
)
RELEASE_NEGATIVE_AUDIO_PROMPT = "Low quality, unclear and noisy."

#: the release's sampling (`train_joint.py` `denoising`, `config/sample.yaml`): each tower's own scheduler in
#: lockstep (UniPC, cosine DPM-Solver), 50 steps, w_v 6, w_a 7, 480 x 832 (834 requested; the Wan VAE makes 832),
#: 81 frames at 15 fps, int(5.4 s x 44,100 / 2,048) = 116 audio latent frames, Wan text padded to 1,024 tokens;
#: a given video or sound is held by replacement sampling (the release trains with coupled timesteps)
RELEASE_GENERATION_DEFAULTS = {
    "schedule": "native",
    "num_inference_steps": 50,
    "video_guidance": 6.0,
    "audio_guidance": 7.0,
    "height": 480,
    "width": 832,
    "num_frames": 81,
    "fps": 15.0,
    "audio_length_rounding": "floor",
    "max_sequence_length": 1024,
    "negative_video_prompt": RELEASE_NEGATIVE_VIDEO_PROMPT,
    "negative_audio_prompt": RELEASE_NEGATIVE_AUDIO_PROMPT,
    "hold": "renoised",  # trained with coupled timesteps: a given stream is held at each step's noise level
}
