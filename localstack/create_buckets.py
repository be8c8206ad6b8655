"""Creates the test bucket on the local S3 server and the test container on Azurite.

object_store reads and writes objects but does not create buckets or containers; the
clients made for that (boto3, azure-storage-blob) do it here, once, before the tests.
"""
import os
import sys

import boto3
from azure.storage.blob import BlobServiceClient

name = sys.argv[1]
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["AWS_ENDPOINT_URL"],
    region_name=os.environ["AWS_REGION"],
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
)
existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
if name not in existing:
    s3.create_bucket(Bucket=name)

# Azurite's well-known development account.
conn = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    f"BlobEndpoint={os.environ['AZURITE_BLOB_STORAGE_URL']}/devstoreaccount1;"
)
svc = BlobServiceClient.from_connection_string(conn)
if not any(c.name == name for c in svc.list_containers()):
    svc.create_container(name)
print(f"create_buckets: bucket and container {name!r} ready")
