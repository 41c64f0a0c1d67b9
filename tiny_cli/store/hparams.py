"""TensorBoard's HPARAMS tab: the experiment, each run's session and its end.

Built from the protos, as `tensorboard.plugins.hparams.metadata` builds them (a test holds
them byte for byte to TensorBoard's own): its helpers import `tensor_util`, and with it
TensorFlow's stub and absl, into every run's start (bench/bench_claims.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

SESSION_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "failed": api_pb2.STATUS_FAILURE,
    "interrupted": api_pb2.STATUS_UNKNOWN,  # TensorBoard's hparams have no "aborted"
}

HPARAM_TYPES = {
    "number": api_pb2.DATA_TYPE_FLOAT64,
    "string": api_pb2.DATA_TYPE_STRING,
    "bool": api_pb2.DATA_TYPE_BOOL,
}


# tensorboard.plugins.hparams.metadata's names (the plugin reads them from the file)
HPARAMS_PLUGIN = "hparams"
HPARAMS_DATA_VERSION = 0
EXPERIMENT_TAG = "_hparams_/experiment"
SESSION_START_INFO_TAG = "_hparams_/session_start_info"
SESSION_END_INFO_TAG = "_hparams_/session_end_info"
# its NULL_TENSOR: a float vector of length 0, the smallest valid tensor
NULL_TENSOR = TensorProto(
    dtype=types_pb2.DT_FLOAT, tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=0)])
)


def _hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    """`hparams.metadata.create_summary_metadata(data)` on `NULL_TENSOR`."""
    data.version = HPARAMS_DATA_VERSION
    plugin = SummaryMetadata.PluginData(
        plugin_name=HPARAMS_PLUGIN, content=data.SerializeToString()
    )
    meta = SummaryMetadata(plugin_data=plugin)
    return Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=NULL_TENSOR)])


# The config keys runs are usually compared by: TensorBoard's HPARAMS view opens on them.
COMPARED = ("task.name", "seed", "train.lr", "init.mode", "model.arch", "train.optimizer")


def hparams_summaries(
    hparams: Mapping[str, Any], kinds: Mapping[str, str], metric_tags: Sequence[str], group: str
) -> list[Summary]:
    """The HPARAMS tab: the experiment (every config key with its kind, the final metrics'
    tags) and this run's session with its config values, grouped under `group` (the run id).

    Every run writes the same experiment, so whichever TensorBoard reads first describes them
    all. A value of None is left out (an empty cell), a list is shown as a string.

    The keys users compare runs by (COMPARED) are marked `differs`: TensorBoard sorts those
    first and shows them when it shows only a few columns (its default), instead of the
    first ones alphabetically (init.mode, init.noise, ...).
    """
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=k, type=HPARAM_TYPES[t], differs=k in COMPARED)
            for k, t in kinds.items()
        ],
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=tag)
            for tag in metric_tags
        ],
    )
    session = plugin_data_pb2.SessionStartInfo(group_name=group, start_time_secs=time.time())
    for key, value in hparams.items():
        if isinstance(value, bool):
            session.hparams[key].bool_value = value
        elif isinstance(value, int | float):
            session.hparams[key].number_value = value
        elif value is not None:
            session.hparams[key].string_value = str(value)
    return [
        _hparams_summary(
            EXPERIMENT_TAG,
            plugin_data_pb2.HParamsPluginData(experiment=experiment),
        ),
        _hparams_summary(
            SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=session),
        ),
    ]


def session_end_summary(status: str) -> Summary:
    info = plugin_data_pb2.SessionEndInfo(status=SESSION_STATUS[status], end_time_secs=time.time())
    return _hparams_summary(
        SESSION_END_INFO_TAG,
        plugin_data_pb2.HParamsPluginData(session_end_info=info),
    )
