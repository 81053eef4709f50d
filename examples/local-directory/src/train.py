"""A tiny training script: fits y = 3x + 2 with gradient descent and writes a metric file."""
import argparse
import json
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()

lr = float(os.environ.get("LEARNING_RATE", "0.05"))
random.seed(0)
data = [(x / 10, 3 * (x / 10) + 2 + random.uniform(-0.05, 0.05)) for x in range(20)]
w, b = 0.0, 0.0
for epoch in range(args.epochs):
    grad_w = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
    grad_b = sum(2 * (w * x + b - y) for x, y in data) / len(data)
    w, b = w - lr * grad_w, b - lr * grad_b
    loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
    print(f"epoch {epoch + 1}/{args.epochs} loss={loss:.4f}", flush=True)

os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", "metrics.json"), "w") as f:
    json.dump({"loss": loss, "w": w, "b": b, "epochs": args.epochs}, f)
print(f"run {os.environ.get('AZUREML_RUN_ID', '?')} done: w={w:.3f} b={b:.3f}")
