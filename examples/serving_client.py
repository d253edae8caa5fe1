"""Asks a TF Serving model server for keras_sagan images and writes them as a PNG grid.

Serve the exported generator first (see saved_models/README.md), then:

    # REST (port 8501), z drawn here from --seed:
    python examples/serving_client.py --server localhost:8501 --model celeba64_demo --num 16 --out grid.png
    # gRPC (port 8500; needs `pip install tensorflow-serving-api`):
    python examples/serving_client.py --server localhost:8500 --grpc --model celeba64_demo --out grid.png
    # Let the server draw z (the `sample` signature), truncated at 0.8:
    python examples/serving_client.py --server localhost:8501 --signature sample --truncation 0.8 --out grid.png

The REST path needs only NumPy and Pillow; the gRPC path imports TensorFlow
and tensorflow-serving-api when it is used.
"""

import argparse
import json
import math
import urllib.request

import numpy as np

OUTPUT_DTYPES = {"images": np.float32, "images_uint8": np.uint8}


# -- REST -----------------------------------------------------------------


def build_rest_request(z, labels=None, signature: str = "serving_default") -> dict:
    """The JSON body of a `serving_default` predict call, in row ("instances") format.

    Args:
        z: `(batch, z_dim)` float noise.
        labels: `(batch,)` int class labels for a conditional model, or None.
        signature: str. Signature name. Defaults to `"serving_default"`.

    Returns:
        `{"signature_name": ..., "instances": [{"z": [...], "labels": int}, ...]}`.
    """
    z = np.asarray(z, np.float32)
    if z.ndim != 2:
        raise ValueError(f"z must have shape (batch, z_dim); received {z.shape}.")
    instances = [{"z": row.tolist()} for row in z]
    if labels is not None:
        labels = np.asarray(labels, np.int64).reshape(-1)
        if labels.shape[0] != z.shape[0]:
            raise ValueError(f"labels needs one entry per row of z ({z.shape[0]}); received {labels.shape[0]}.")
        for instance, label in zip(instances, labels):
            instance["labels"] = int(label)
    return {"signature_name": signature, "instances": instances}


def build_rest_sample_request(num_images: int, seed: int, truncation: float = 0.0, labels=None) -> dict:
    """The JSON body of a `sample` call (scalar inputs need the columnar "inputs" format)."""
    inputs = {"num_images": int(num_images), "seed": int(seed), "truncation": float(truncation)}
    if labels is not None:  # Conditional models only; [] cycles the classes from the seed.
        inputs["labels"] = [int(v) for v in np.asarray(labels).reshape(-1)]
    return {"signature_name": "sample", "inputs": inputs}


def decode_rest_response(response) -> dict:
    """Decodes a predict response (a JSON string, bytes or parsed dict) into arrays.

    TF Serving answers a row-format request with `{"predictions": [{"images":
    ..., "images_uint8": ...}, ...]}` (one dict per image) and a columnar one
    with `{"outputs": {"images": [...], "images_uint8": [...]}}`.

    Returns:
        `{"images": float32 (B, H, W, 3), "images_uint8": uint8 (B, H, W, 3)}`.
    """
    if isinstance(response, (str, bytes)):
        response = json.loads(response)
    if "error" in response:
        raise RuntimeError(f"model server error: {response['error']}")
    if "predictions" in response:
        rows = response["predictions"]
        if rows and isinstance(rows[0], dict):
            columns = {key: [row[key] for row in rows] for key in rows[0]}
        else:  # A single-output signature returns bare rows.
            columns = {"images": rows}
    elif "outputs" in response:
        outputs = response["outputs"]
        columns = outputs if isinstance(outputs, dict) else {"images": outputs}
    else:
        raise ValueError(f"not a predict response: keys {sorted(response)}")
    return {key: np.asarray(value, OUTPUT_DTYPES.get(key, np.float32)) for key, value in columns.items()}


def predict_rest(server: str, model: str, body: dict, version: int | None = None, timeout: float = 60.0) -> dict:
    """POSTs `body` to `http://SERVER/v1/models/MODEL[/versions/N]:predict`; returns the parsed JSON."""
    url = f"http://{server}/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


# -- gRPC -----------------------------------------------------------------


def build_grpc_request(z, labels=None, model: str = "celeba64_demo", signature: str = "serving_default", version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for `serving_default`.

    Args:
        z: `(batch, z_dim)` float noise.
        labels: `(batch,)` int class labels for a conditional model, or None.
        model: str. The served model's name (models.config `name`).
        signature: str. Signature name.
        version: int or None. A specific version; None lets the server pick.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.asarray(z, np.float32)))
    if labels is not None:
        request.inputs["labels"].CopyFrom(tf.make_tensor_proto(np.asarray(labels, np.int32).reshape(-1)))
    return request


def build_grpc_sample_request(num_images, seed, truncation=0.0, labels=None, model="celeba64_demo", version=None):
    """A `PredictRequest` for the `sample` signature."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "sample"
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs["num_images"].CopyFrom(tf.make_tensor_proto(np.int32(num_images)))
    request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.int64(seed)))
    request.inputs["truncation"].CopyFrom(tf.make_tensor_proto(np.float32(truncation)))
    if labels is not None:
        request.inputs["labels"].CopyFrom(tf.make_tensor_proto(np.asarray(labels, np.int32).reshape(-1)))
    return request


def decode_grpc_response(response) -> dict:
    """`PredictResponse` -> `{"images": float32 array, "images_uint8": uint8 array}`."""
    import tensorflow as tf

    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def predict_grpc(server: str, request, timeout: float = 60.0):
    """Sends `request` to the PredictionService at `server` (host:8500)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)


# -- images ---------------------------------------------------------------


def save_grid(images_uint8, path: str, padding: int = 2) -> None:
    """Tiles `(N, H, W, 3)` uint8 images into a near-square grid and writes a PNG."""
    from PIL import Image

    images = np.asarray(images_uint8, np.uint8)
    n, h, w, c = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding, c), np.uint8)
    for i, image in enumerate(images):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[top : top + h, left : left + w] = image
    Image.fromarray(grid).save(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="localhost:8501", help="host:port (8501 REST, 8500 gRPC).")
    parser.add_argument("--model", default="celeba64_demo", help="Served model name.")
    parser.add_argument("--version", type=int, default=None, help="Model version (default: the server's latest).")
    parser.add_argument("--grpc", action="store_true", help="Use gRPC instead of REST.")
    parser.add_argument("--signature", choices=["serving_default", "sample"], default="serving_default")
    parser.add_argument("--num", type=int, default=16, help="Number of images.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of z (drawn here, or by the server for sample).")
    parser.add_argument("--z-dim", type=int, default=128, help="The model's z_dim (serving_default only).")
    parser.add_argument("--truncation", type=float, default=0.0, help="sample only: |z| <= t when t > 0.")
    parser.add_argument("--labels", type=int, nargs="+", default=None, help="Class labels (conditional models).")
    parser.add_argument("--out", default="grid.png", help="PNG file to write.")
    args = parser.parse_args(argv)

    labels = args.labels
    if labels is not None and len(labels) == 1:
        labels = labels * args.num
    if args.signature == "sample":
        if args.grpc:
            request = build_grpc_sample_request(args.num, args.seed, args.truncation, labels, args.model, args.version)
        else:
            body = build_rest_sample_request(args.num, args.seed, args.truncation, labels)
    else:
        z = np.random.default_rng(args.seed).standard_normal((args.num, args.z_dim)).astype(np.float32)
        if args.grpc:
            request = build_grpc_request(z, labels, args.model, version=args.version)
        else:
            body = build_rest_request(z, labels)
    if args.grpc:
        outputs = decode_grpc_response(predict_grpc(args.server, request))
    else:
        outputs = decode_rest_response(predict_rest(args.server, args.model, body, args.version))
    save_grid(outputs["images_uint8"], args.out)
    print(f"wrote {args.out}: {outputs['images_uint8'].shape[0]} images")


if __name__ == "__main__":
    main()
