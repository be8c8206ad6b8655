"""Uploads a folder's files into s3://BUCKET/PREFIX with boto3, as a plain S3 tool would
(the seeding step of a backup copy: copy to a local disk, carry it over, upload it).

usage: upload_dir.py DIR s3://BUCKET/PREFIX
"""
import os
import sys

import boto3

src, dst = sys.argv[1], sys.argv[2]
bucket, _, prefix = dst[len("s3://"):].partition("/")
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
)
n = 0
for root, _, files in os.walk(src):
    for f in files:
        path = os.path.join(root, f)
        key = os.path.relpath(path, src).replace(os.sep, "/")
        s3.upload_file(path, bucket, f"{prefix}/{key}" if prefix else key)
        n += 1
print(f"uploaded {n} objects to {dst}")
