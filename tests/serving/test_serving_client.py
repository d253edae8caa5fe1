"""examples/serving_client.py against the exported model's own signatures (what TF Serving runs), no server."""

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_sagan
from keras_sagan.export import saved_model

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "serving_client.py")
_spec = importlib.util.spec_from_file_location("serving_client", _PATH)
client = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(client)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    generator = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8)
    return tf.saved_model.load(saved_model.export_generator(generator, tmp_path_factory.mktemp("client") / "demo"))


@pytest.fixture(scope="module")
def z():
    return np.random.RandomState(0).randn(3, 128).astype("float32")


def _run_signature(model, name, tensors):
    """Feeds numpy inputs to a signature with the dtypes it declares, as the model server does."""
    signature = model.signatures[name]
    specs = signature.structured_input_signature[1]
    return {
        k: v.numpy() for k, v in signature(**{k: tf.constant(v, specs[k].dtype) for k, v in tensors.items()}).items()
    }


def _serve_rest(model, body):
    """TF Serving's REST predict: row ("instances") or columnar ("inputs") JSON in, JSON out."""
    body = json.loads(json.dumps(body))  # what travels over HTTP
    name = body.get("signature_name", "serving_default")
    if "instances" in body:
        keys = body["instances"][0].keys()
        outputs = _run_signature(model, name, {k: np.array([row[k] for row in body["instances"]]) for k in keys})
        rows = [{k: v[i].tolist() for k, v in outputs.items()} for i in range(len(body["instances"]))]
        return json.dumps({"predictions": rows}), outputs
    outputs = _run_signature(model, name, {k: np.array(v) for k, v in body["inputs"].items()})
    return json.dumps({"outputs": {k: v.tolist() for k, v in outputs.items()}}), outputs


def _predict_pb2():
    # tensorflow-serving-api (the gRPC protos) is an optional client dependency.
    return pytest.importorskip("tensorflow_serving.apis.predict_pb2")


def _serve_grpc(model, request):
    """TF Serving's gRPC Predict: TensorProtos in, TensorProtos out (through the wire format)."""
    predict_pb2 = _predict_pb2()
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    tensors = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    outputs = _run_signature(model, request.model_spec.signature_name, tensors)
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return predict_pb2.PredictResponse.FromString(response.SerializeToString()), outputs


def _assert_same(decoded, outputs):
    assert set(decoded) == {"images", "images_uint8"}
    assert decoded["images"].dtype == np.float32 and decoded["images_uint8"].dtype == np.uint8
    np.testing.assert_array_equal(decoded["images"], outputs["images"])
    np.testing.assert_array_equal(decoded["images_uint8"], outputs["images_uint8"])


def test_rest_request_layout(z):
    body = client.build_rest_request(z)
    assert body["signature_name"] == "serving_default" and len(body["instances"]) == 3
    np.testing.assert_array_equal(np.array([row["z"] for row in json.loads(json.dumps(body))["instances"]], "f4"), z)
    labelled = client.build_rest_request(z, labels=[1, 2, 3])
    assert [row["labels"] for row in labelled["instances"]] == [1, 2, 3]
    with pytest.raises(ValueError, match="one entry per row"):
        client.build_rest_request(z, labels=[1])


def test_rest_round_trip_equals_model(model, z):
    response, outputs = _serve_rest(model, client.build_rest_request(z))
    decoded = client.decode_rest_response(response)
    _assert_same(decoded, outputs)
    # ...and what the server computed is the model on exactly this z.
    direct = model.signatures["serving_default"](z=tf.constant(z))
    np.testing.assert_array_equal(decoded["images"], direct["images"].numpy())
    assert decoded["images"].shape == (3, 32, 32, 3)


def test_rest_sample_round_trip(model):
    body = client.build_rest_sample_request(4, seed=5, truncation=0.5)
    response, outputs = _serve_rest(model, body)
    _assert_same(client.decode_rest_response(response.encode()), outputs)
    assert outputs["images"].shape[0] == 4


def test_rest_error_and_junk():
    with pytest.raises(RuntimeError, match="z must have shape"):
        client.decode_rest_response('{"error": "z must have shape [batch, 128]"}')
    with pytest.raises(ValueError, match="not a predict response"):
        client.decode_rest_response({"foo": 1})


def test_grpc_round_trip_equals_model(model, z):
    _predict_pb2()
    request = client.build_grpc_request(z, model="celeba64_demo", version=2)
    assert request.model_spec.name == "celeba64_demo" and request.model_spec.version.value == 2
    assert request.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["z"]), z)
    response, outputs = _serve_grpc(model, request)
    decoded = client.decode_grpc_response(response)
    _assert_same(decoded, outputs)
    np.testing.assert_array_equal(decoded["images"], model.signatures["serving_default"](z=tf.constant(z))["images"])


def test_grpc_sample_round_trip(model):
    _predict_pb2()
    request = client.build_grpc_sample_request(2, seed=9, truncation=0.0)
    assert tf.make_ndarray(request.inputs["seed"]).dtype == np.int64
    response, outputs = _serve_grpc(model, request)
    _assert_same(client.decode_grpc_response(response), outputs)


def test_grpc_labels():
    _predict_pb2()
    request = client.build_grpc_request(np.zeros((2, 4), "float32"), labels=[3, 4])
    labels = tf.make_ndarray(request.inputs["labels"])
    assert labels.dtype == np.int32 and labels.tolist() == [3, 4]


def test_save_grid(model, z, tmp_path):
    response, _ = _serve_rest(model, client.build_rest_request(z))
    client.save_grid(client.decode_rest_response(response)["images_uint8"], str(tmp_path / "grid.png"))
    assert np.asarray(Image.open(tmp_path / "grid.png")).shape == (2 + 2 * 34, 2 + 2 * 34, 3)
