"""An S3-compatible endpoint on 127.0.0.1: moto in server mode, with real credential checks.

moto accepts any key until told otherwise. `bootstrap` creates the IAM users (each with a generated
access key and an allow-all inline policy) and the buckets, then switches authentication on
(`/moto-api/reset-auth`): from then on a wrong key is refused with InvalidAccessKeyId, as AWS does.
moto keeps everything in memory, so the endpoint's contents live exactly as long as its process.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aistudio.team_stack import processes
from aistudio.team_stack.processes import HOST

REGION = "us-east-1"
START_TIMEOUT_S = 60
_ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
        }


@dataclass(frozen=True)
class S3Endpoint:
    root: Path
    port: int
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "s3.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "s3.pid"

    def running(self) -> bool:
        return processes.alive(processes.read_pid(self.pid_file)) and processes.port_open(
            self.port, self.host
        )

    def start(self) -> None:
        processes.require_free(self.port, "S3 endpoint (moto)")
        command = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        process = processes.spawn(command, self.log, os.environ, self.pid_file)
        processes.wait_until(
            lambda: processes.port_open(self.port, self.host),
            START_TIMEOUT_S,
            f"S3 endpoint (moto) on {self.url}",
            self.log,
            alive=lambda: process.poll() is None,
        )

    def stop(self) -> None:
        processes.stop(self.pid_file)

    def client(self, service: str, credentials: Credentials | None = None):
        import boto3

        # Before authentication is on, any key is accepted; after it, only the bootstrapped ones.
        creds = credentials or Credentials("bootstrap", "bootstrap")
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
        )

    def bootstrap(self, users: Sequence[str], buckets: Sequence[str]) -> Mapping[str, Credentials]:
        """IAM users with fresh keys, the buckets, then authentication on; returns each user's key."""
        keys = {user: self.add_user(user) for user in users}
        s3 = self.client("s3")
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        self.require_authentication()
        return keys

    def add_user(self, name: str, admin: Credentials | None = None) -> Credentials:
        """An IAM user allowed everything, with a fresh key; `admin` signs once authentication is on."""
        iam = self.client("iam", admin)
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        iam.put_user_policy(UserName=name, PolicyName="aistudio-team", PolicyDocument=_ALLOW_ALL)
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def require_authentication(self) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=b"0",  # requests allowed without a valid signature from now on
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - our own loopback endpoint
