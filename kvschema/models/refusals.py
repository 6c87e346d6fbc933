"""What kvschema refuses to size, and why: models vLLM 0.33 does not serve, and non-decoders.

A refusal names the reason — a model vLLM 0.33 dropped (with the last version that served it),
one whose cache kvschema does not model yet, or a model that keeps no decoder KV cache at all
(an encoder, an encoder-decoder, a vision or audio tower).  A wrong size is worse than a clear
"no".

>>> refusal_for(["MllamaForConditionalGeneration"], "mllama")[:52]
'vLLM 0.33 no longer serves MllamaForConditionalGener'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ENCODERS",
    "NOT_READ",
    "PREVIOUSLY_SUPPORTED",
    "UNSERVED_MODEL_TYPES",
    "not_a_decoder",
    "refusal_for",
]

#: vLLM 0.33 ``_PREVIOUSLY_SUPPORTED_MODELS`` (``vllm/model_executor/models/registry.py``):
#: architecture → the last vLLM version that served it.
PREVIOUSLY_SUPPORTED: dict[str, str] = {
    "MotifForCausalLM": "0.10.2",
    "Phi3SmallForCausalLM": "0.9.2",
    "Phi4FlashForCausalLM": "0.10.2",
    "Phi4MultimodalForCausalLM": "0.12.0",
    "JAISLMHeadModel": "0.22.0",
    "ErnieModel": "0.23.0",
    "ErnieForSequenceClassification": "0.23.0",
    "ErnieForTokenClassification": "0.23.0",
    "InternLM2VEForCausalLM": "0.23.0",
    "QWenLMHeadModel": "0.23.0",
    "QwenVLForConditionalGeneration": "0.23.0",
    "InternLMForCausalLM": "0.23.0",
    "DonutForConditionalGeneration": "0.10.2",
    "MllamaForConditionalGeneration": "0.10.2",
    "XverseForCausalLM": "0.23.0",
    "Dots1ForCausalLM": "0.23.0",
    "BambaForCausalLM": "0.23.0",
    "MiniMaxForCausalLM": "0.23.0",
    "MiniMaxText01ForCausalLM": "0.23.0",
    "MiniMaxM1ForCausalLM": "0.23.0",
    "MiniMaxVL01ForConditionalGeneration": "0.23.0",
    "BaiChuanForCausalLM": "0.23.0",
    "BaichuanForCausalLM": "0.23.0",
    "AquilaModel": "0.24.0",
    "AquilaForCausalLM": "0.24.0",
    "Grok1ModelForCausalLM": "0.24.0",
    "Grok1ForCausalLM": "0.24.0",
    "TarsierForConditionalGeneration": "0.24.0",
    "Tarsier2ForConditionalGeneration": "0.23.0",
    "MantisForConditionalGeneration": "0.24.0",
    "MusicFlamingoForConditionalGeneration": "0.24.0",
    "AyaVisionForConditionalGeneration": "0.24.0",
    "TeleChatForCausalLM": "0.25.0",
    "PersimmonForCausalLM": "0.25.0",
    "FuyuForCausalLM": "0.25.0",
    "Plamo2ForCausalLM": "0.26.0",
    "OuroForCausalLM": "0.26.0",
    "ArcticForCausalLM": "0.28.0",
    "ChameleonForConditionalGeneration": "0.28.0",
    "Cheers": "0.28.0",
    "CheersForConditionalGeneration": "0.28.0",
    "Fairseq2LlamaForCausalLM": "0.28.0",
    "FireRedLIDForConditionalGeneration": "0.28.0",
    "GritLM": "0.28.0",
    "HCXVisionForCausalLM": "0.28.0",
    "MPTForCausalLM": "0.28.0",
    "MptForCausalLM": "0.28.0",
    "RWForCausalLM": "0.28.0",
    "StableLMEpochForCausalLM": "0.28.0",
    "PrithviGeoSpatialMAE": "0.28.0",
}

#: Why a dropped model would not be sized anyway (what its cache was).
_DROPPED_DETAIL = {
    "MllamaForConditionalGeneration": (
        "; its cross-attention layers cache the image tokens once per request (vLLM's "
        "CrossAttentionSpec), which a per-token decoder cache would misstate"
    ),
    "BambaForCausalLM": " (a Mamba-2 / attention hybrid)",
    "MiniMaxText01ForCausalLM": " (lightning linear attention with softmax layers)",
    "MiniMaxM1ForCausalLM": " (lightning linear attention with softmax layers)",
    "MiniMaxForCausalLM": " (lightning linear attention with softmax layers)",
}

#: Architectures vLLM 0.33 serves whose cache kvschema does not read (yet), and why.
NOT_READ: dict[str, str] = {
    "AliceAIForCausalLM": "Kimi delta attention with separate key heads",
    "AXK1ForCausalLM": "its MLA variant",
    "BailingMoeForCausalLM": "Bailing MoE attention",
    "BailingMoeV2ForCausalLM": "Bailing MoE attention",
    "BailingMoeV2_5ForCausalLM": "lightning linear attention beside MLA",
    "BailingMoeV3ForCausalLM": "delta attention beside MLA",
    "BeamForCausalLM": "its own attention layout",
    "DeepseekV4ForCausalLM": "compressed sparse attention and its compressor caches",
    "DomynEdgeForCausalLM": "its window rule",
    "DoryForCausalLM": "its own layer pattern",
    "ExaoneForCausalLM": "EXAONE 3 remote-code fields",
    "FlintForCausalLM": "its own attention layout",
    "Glm5NextForCausalLM": "delta attention with a sparse indexer",
    "HCXVisionV2ForCausalLM": "a vision-language wrapper",
    "HYV4ForCausalLM": "compressed sparse attention",
    "IQuestLoopCoderForCausalLM": "looped layers",
    "InklingForCausalLM": "windows with separate V heads",
    "InklingForConditionalGeneration": "windows with separate V heads",
    "K2HorizonForCausalLM": "remote-code fields",
    "LongcatFlashNgramForCausalLM": "its n-gram variant",
    "MiniMaxM3SparseForCausalLM": "sparse attention caches",
    "MuseGlimmerForCausalLM": "its own window pattern",
    "PanguEmbeddedForCausalLM": "openPangu MLA with windows and separate V heads",
    "PanguProMoEV2ForCausalLM": "openPangu MLA with windows and separate V heads",
    "PanguUltraMoEForCausalLM": "openPangu MLA with windows and separate V heads",
    "Param2MoEForCausalLM": "remote-code fields",
    "Plamo3ForCausalLM": "per-layer interleaved windows",
    "Qwen4ExpForCausalLM": "block-compressed sparse attention",
    "SarvamMLAForCausalLM": "its MLA variant",
    "SarvamMoEForCausalLM": "remote-code fields",
    "SolarForCausalLM": "remote-code fields",
    "Step1ForCausalLM": "remote-code fields",
    "Step3p5ForCausalLM": "per-layer windows and head counts",
    "Step5ForCausalLM": "KV sharing with an indexer",
    "TeleChat2ForCausalLM": "remote-code fields",
    "TeleFLMForCausalLM": "remote-code fields",
    # served by vLLM's Transformers backend
    "HunYuanDenseV1ForCausalLM": "Transformers-backend head sizes",
    "HunYuanMoEV1ForCausalLM": "Transformers-backend head sizes",
    "NanbeigeForCausalLM": "remote-code fields",
    "Emu3ForConditionalGeneration": "a multimodal Transformers-backend model",
    "HunYuanVLForConditionalGeneration": "a multimodal Transformers-backend model",
    "VibeVoiceAsrForConditionalGeneration": "a speech model",
}

#: Model types transformers defines that vLLM 0.33 does not serve (no architecture for them).
UNSERVED_MODEL_TYPES: dict[str, str] = {
    "jetmoe": (
        "JetMoE is not in vLLM 0.33's registry (transformers sizes its heads by kv_channels, "
        "num_key_value_heads of them, every layer full)"
    ),
    "recurrent_gemma": (
        "RecurrentGemma is not in vLLM 0.33's registry (it has no mixer for its RG-LRU blocks)"
    ),
    "zamba": "Zamba (v1) is not in vLLM 0.33's registry (Zamba2 is)",
    "bamba": "vLLM 0.33 no longer serves Bamba (last served in 0.23.0)",
    "minimax": "vLLM 0.33 no longer serves MiniMax-Text-01 / M1 (last served in 0.23.0)",
    "mllama": (
        "vLLM 0.33 no longer serves Llama 3.2 Vision (mllama; last served in 0.10.2): its "
        "cross-attention layers cache image tokens, not a per-token decoder cache"
    ),
    "mllama_text_model": "vLLM 0.33 no longer serves Llama 3.2 Vision (mllama)",
    "mpt": "vLLM 0.33 no longer serves MPT (last served in 0.28.0)",
    "persimmon": "vLLM 0.33 no longer serves Persimmon (last served in 0.25.0)",
    "plamo2": "vLLM 0.33 no longer serves PLaMo 2 (last served in 0.26.0)",
    "arctic": "vLLM 0.33 no longer serves Arctic (last served in 0.28.0)",
}

#: Model types of encoders, encoder-only towers and dual encoders: no decoder KV cache.
ENCODERS = frozenset(
    """albert align altclip bert big_bird bridgetower camembert canine chinese_clip clap clip
    clipseg convbert data2vec-audio data2vec-text data2vec-vision deberta deberta-v2 deit dinov2
    distilbert electra ernie esm eurobert flaubert flava fnet funnel groupvit hubert ibert
    layoutlm layoutlmv2 layoutlmv3 lilt longformer luke markuplm megatron-bert metaclip_2
    mobilebert modernbert mpnet mra nomic_bert nystromformer owlv2 owlvit perceiver reformer
    rembert roberta roberta-prelayernorm roc_bert roformer sam sam2 siglip siglip2 squeezebert
    swin swinv2 tapas unispeech unispeech-sat vit vit_mae wav2vec2 wav2vec2-bert wav2vec2-conformer
    wavlm whisper xclip xlm xlm-roberta xlm-roberta-xl xmod yoso""".split()  # noqa: SIM905
)

_HEADS = (
    "ForMaskedLM",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMultipleChoice",
    "ForPreTraining",
    "ForImageClassification",
    "ForCTC",
    "ForAudioClassification",
    "ForObjectDetection",
    "ForSemanticSegmentation",
    "ForDepthEstimation",
    "ForMaskGeneration",
    "ForImageTextRetrieval",
    "ForNextSentencePrediction",
)


def refusal_for(architectures: Sequence[str], model_type: str) -> str | None:
    """Why kvschema refuses a model with these ``architectures`` / ``model_type``, or None.

    >>> refusal_for([], "jetmoe").startswith("JetMoE is not in vLLM 0.33")
    True
    >>> refusal_for(["LlamaForCausalLM"], "llama") is None
    True
    """
    for name in architectures:
        if name in PREVIOUSLY_SUPPORTED:
            return (
                f"vLLM 0.33 no longer serves {name} (last served in "
                f"{PREVIOUSLY_SUPPORTED[name]}){_DROPPED_DETAIL.get(name, '')}"
            )
        if name in NOT_READ:
            return (
                f"vLLM 0.33 serves {name}, but kvschema does not read its cache "
                f"({NOT_READ[name]}) yet"
            )
    return UNSERVED_MODEL_TYPES.get(model_type)


def not_a_decoder(config: Mapping[str, Any], model_type: str) -> str | None:
    """Why ``config`` keeps no decoder KV cache (an encoder, encoder-decoder, tower), or None.

    >>> not_a_decoder({"architectures": ["BertForMaskedLM"]}, "bert")
    'bert is an encoder: it keeps no KV cache'
    >>> not_a_decoder({"is_encoder_decoder": True}, "t5")
    't5 is an encoder-decoder: vLLM 0.33 serves none but Whisper, and that with a cross-attention cache kvschema does not size'
    """
    if config.get("is_encoder_decoder") is True:
        return (
            f"{model_type} is an encoder-decoder: vLLM 0.33 serves none but Whisper, and that "
            "with a cross-attention cache kvschema does not size"
        )
    if model_type in ENCODERS:
        return f"{model_type} is an encoder: it keeps no KV cache"
    if any(part in model_type for part in ("vision", "audio", "_encoder", "vit")):
        return f"{model_type} is a vision / audio tower or encoder: it keeps no decoder KV cache"
    names = config.get("architectures")
    if (
        isinstance(names, list)
        and names
        and all(isinstance(n, str) and n.endswith(_HEADS) for n in names)
    ):
        return (
            f"{model_type}'s architectures ({', '.join(names)}) are encoder heads: no decoder "
            "KV cache"
        )
    return None
