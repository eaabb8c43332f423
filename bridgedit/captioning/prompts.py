"""The HVGC prompts (§3.2, App. C.6), verbatim, as versioned constants.

STAGE1_VIDEO_CAPTION, STAGE2_AUDIO_LABELS and STAGE3_AUDIO_CAPTION are the texts of the paper's Figures 5, 6
and 7 (without the figures' title lines); `tests/test_captioning.py` compares them with the paper's text.
The paper's placeholders are `{video_caption}` (Figures 6 and 7) and, in Figure 7, `[{"audio_labels}"]`,
which we read as a misprint of `["{audio_labels}"]`: the labels are rendered as a JSON-style list,
`["Hammer", "Sparks"]`, the form of the example inside the same prompt.

The other modes of Table 3's caption ablation have no prompt in the paper; ours are marked as such and
versioned with the rest. Changing any prompt text must change PROMPT_VERSION (finished captions made with
another version are re-done only with --force).
"""

from __future__ import annotations

PROMPT_VERSION = "hvgc-1"

# Figure 5: Stage 1, detailed visual scene description (a vision-language model watches the clip)
STAGE1_VIDEO_CAPTION = """You are an expert video analyst and prompt engineer. Your goal is to watch a video and create a highly effective, descriptive prompt that can be used by a text-to-video generation model to recreate the visual essence and physical dynamics of the scene.
Your generated prompt should be a dense, continuous paragraph rich with visual details. Follow this thinking process:
1. **Scene and Atmosphere**:
* Describe the core environment and the overall mood. Translate any auditory feeling (e.g., tension from music) into visual terms (e.g., 'high-contrast lighting, deep shadows').
2. **Subjects and Details**:
* Identify the main subjects and objects. Describe them with specific visual adjectives ('a weathered blacksmith with soot-stained hands', 'a glowing orange piece of iron').
3. **Key Actions, Cinematography, and Physical Dynamics**:
* Describe the sequence of most important actions.
* Describe the cinematography (shot type, angle, movement).
* **[NEW CORE RULE]** Describe the "Visual Counterpart" of Sound: Instead of describing sound itself, describe the physical actions that *create* sound. Focus on impact, interaction, and motion that implies sound.
* **For Speech/Vocalization**: Detail the mouth movements, facial expressions, and throat or chest movements ('a lion opens its massive jaws wide, a deep roar building in its chest').
* **For Impacts**: Describe the collision, the reaction, and the result ('a heavy hammer strikes the glowing iron, sending a shower of bright orange sparks flying into the air; the metal visibly deforms under the blow').
* **For Movement/Friction**: Detail the interaction between surfaces ('a car's tires screech, leaving black rubber marks on the asphalt as it drifts around a corner').
* **For Natural Forces**: Describe the effect of the force on the environment ('trees bend and sway violently under the force of the wind, loose leaves are whipped into a frenzy').
4. **Visual Style and Quality**:
* Specify the artistic style ('photorealistic', 'cinematic'), lighting ('dramatic, warm light from the forge'), and visual quality ('highly detailed, 4K').
* **Final Instruction**: Synthesize all these visual and physical elements into a single, rich, and coherent paragraph. Your entire output should be a prompt that visually and dynamically directs an AI. **Do NOT describe sound itself, but rather the physics of its creation.**
Based on the video, the prompt for video generation is:"""

# Figure 6: Stage 2, auditory concept abstraction (an LLM reads T_V)
STAGE2_AUDIO_LABELS = """You are an expert AI assistant specializing in identifying auditory concepts from text. Your task is to read a descriptive video caption and extract a list of the primary objects or events that produce sound.
Instructions:
1. Analyze the provided caption to understand the scene.
2. Identify only the key elements that would create distinct sounds.
3. Ignore general scenery, static objects, or characters not directly involved in making a sound.
4. Output the concepts as a simple, comma-separated list of keywords.
Example:
Input Caption: A strong blacksmith forcefully strikes a hammer on glowing iron in the workshop, sending a shower of sparks.
Audio Labels: Hammer, Sparks
Your Task:
Input Caption: {video_caption}
Audio Labels:"""

# Figure 7: Stage 3, visually-grounded audio caption generation (an LLM reads T_V and the labels)
STAGE3_AUDIO_CAPTION = """TASK
Generate a concise, descriptive audio-only caption. You will be given a detailed video caption for context and a short list of key audio labels. This generated caption will be used as a prompt for a text-to-audio model, so it must describe a single, co-existing soundscape.
GUIDELINES
1. Audio Only: The caption MUST describe only the audible aspects. Do not mention or allude to any visual information from the video caption.
2. No Sequences: DO NOT use temporal words (e.g., "first," "then," "starts with," "followed by"). Describe all sounds as if they are happening together in one scene.
3. Describe Characteristics: Based on the labels, describe the sound's quality.
 - * Human Sounds: e.g., "a low-pitched voice," "a loud shout."
 - * Sound Effects: e.g., "a door creaking," "a hammer striking metal."
 - * Music: e.g., "an upbeat electronic drum beat," "a slow acoustic guitar."
 - * Environment: e.g., "the rumble of city traffic," "wind howling," "birds chirping."
4. Final Output: The result must be a single, continuous audio caption that combines the elements from the audio labels into one coherent phrase.
EXAMPLE
Input Context:
* Video Caption: A young man with a red backpack walks briskly down a paved path in a large city park during autumn. The wind is strong, whipping through the nearly bare trees and rustling his jacket. He wears large, black headphones, nodding his head to a beat. A small terrier on a leash ahead of him stops suddenly and lets out a sharp bark at a squirrel.
* Audio Labels: `["Strong Wind", "Rock Music with Electric Guitar", "Dog Bark"]`
Correct Output:
* Audio Caption: The powerful roar of strong wind, a sharp dog bark, and the driving sound of rock music with an electric guitar all blend together in a dynamic soundscape.
YOUR TASK
Video Caption: {video_caption}
Audio Labels: [{"audio_labels}"]
Audio Caption:"""

# ----------------------------------------------------------------------------------------------------
# Ours (not in the paper), for the ablation modes of Table 3
# ----------------------------------------------------------------------------------------------------

# hvgc-no-stage2: Figure 7 without the labels (T_A straight from T_V)
NO_STAGE2_AUDIO_CAPTION = """TASK
Generate a concise, descriptive audio-only caption. You will be given a detailed video caption for context. This generated caption will be used as a prompt for a text-to-audio model, so it must describe a single, co-existing soundscape.
GUIDELINES
1. Audio Only: The caption MUST describe only the audible aspects. Do not mention or allude to any visual information from the video caption.
2. No Sequences: DO NOT use temporal words (e.g., "first," "then," "starts with," "followed by"). Describe all sounds as if they are happening together in one scene.
3. Describe Characteristics: Describe the sound's quality.
 - * Human Sounds: e.g., "a low-pitched voice," "a loud shout."
 - * Sound Effects: e.g., "a door creaking," "a hammer striking metal."
 - * Music: e.g., "an upbeat electronic drum beat," "a slow acoustic guitar."
 - * Environment: e.g., "the rumble of city traffic," "wind howling," "birds chirping."
4. Final Output: The result must be a single, continuous audio caption that combines the sounds of the scene into one coherent phrase.
EXAMPLE
Input Context:
* Video Caption: A young man with a red backpack walks briskly down a paved path in a large city park during autumn. The wind is strong, whipping through the nearly bare trees and rustling his jacket. He wears large, black headphones, nodding his head to a beat. A small terrier on a leash ahead of him stops suddenly and lets out a sharp bark at a squirrel.
Correct Output:
* Audio Caption: The powerful roar of strong wind, a sharp dog bark, and the driving sound of rock music with an electric guitar all blend together in a dynamic soundscape.
YOUR TASK
Video Caption: {video_caption}
Audio Caption:"""

# audio-llm: an audio-language model (e.g. Qwen2-Audio) listens to the clip's audio
AUDIO_LLM_CAPTION = """Listen to the audio clip and write one concise, descriptive caption of what can be heard, for use as a prompt for a text-to-audio model. Describe only the sounds and their qualities, as a single co-existing soundscape, without temporal words such as "first" or "then".
Audio Caption:"""

# omni: one caption from an omni model that watches and listens (e.g. Qwen2.5-Omni), used for both towers
OMNI_CAPTION = """Watch and listen to the video clip and write one detailed caption of it, for use as a prompt for a model that generates the video together with its sound: describe the scene, the subjects and their actions, the camera, the visual style, and the sounds that can be heard.
Caption:"""


def render_stage2(video_caption: str) -> str:
    return STAGE2_AUDIO_LABELS.replace("{video_caption}", video_caption)


def render_stage3(video_caption: str, audio_labels: list[str]) -> str:
    labels = '"' + '", "'.join(audio_labels)  # with the template's [ ... "] this reads ["a", "b"]
    return STAGE3_AUDIO_CAPTION.replace("{video_caption}", video_caption).replace('{"audio_labels}', labels)


def render_no_stage2(video_caption: str) -> str:
    return NO_STAGE2_AUDIO_CAPTION.replace("{video_caption}", video_caption)
