"""``benchmark server``: a local MLflow server (bound to 127.0.0.1 unless told), started or stopped."""

from __future__ import annotations

import os
import sys

import click

from benchmark.cli.options import CliError, one_line_errors


@click.command()
@click.option("--backend-store-uri", default="sqlite:///mlflow.db", help="Run store: sqlite:///FILE or postgresql://...")
@click.option("--artifacts-destination", default="mlartifacts", help="Where the server writes artifacts (a folder, or s3://...).")
@click.option("--host", default="127.0.0.1", help="Interface to listen on; 0.0.0.0 lets other machines in (use --auth then).")
@click.option("--port", type=int, default=5000)
@click.option("--workers", type=int, default=4, help="Server worker processes.")
@click.option("--allowed-hosts", default="", help="Host headers to accept besides localhost and private IPs: the name "
                                                 "workers use, e.g. tracker,tracker:5000 [default: MLflow's].",
              show_default=False)
@click.option("--auth", is_flag=True, help="MLflow's basic-auth app: every request needs the admin account (or a user "
                                           "it adds), from MLFLOW_TRACKING_USERNAME/PASSWORD or --auth-file.")
@click.option("--auth-file", type=click.Path(dir_okay=False), default=None,
              help="With --auth: a file holding username:password, readable by its owner only (never the password "
                   "on the command line).")
@click.option("--default-permission", type=click.Choice(["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"]), default="READ",
              help="With --auth: what every user the admin adds may do with an experiment nobody granted them "
                   "(MLflow's READ lets every user read every experiment; NO_PERMISSIONS, then grant per experiment).")
@click.option("--background", is_flag=True, help="Return once the server answers; it runs on, logging to "
                                                 "mlflow-server.log (pid in mlflow-server-PORT.pid).")
@click.option("--stop", is_flag=True, help="Stop the --background server on --port started from this folder.")
@one_line_errors
def server(backend_store_uri, artifacts_destination, host, port, workers, allowed_hosts, auth, auth_file, default_permission,
           background, stop):
    """Run an MLflow tracking server with artifact proxying, for sweeps whose workers are on other
    machines. In the foreground this process becomes the server (stop it with Ctrl-C)."""
    from pathlib import Path

    from genre_models.tracking.server import credentials, exposure_warning, stop_recorded_server

    pid_file = Path(f"mlflow-server-{port}.pid")
    if stop:
        pid, found = stop_recorded_server(pid_file, port)
        click.echo(f"stopped the MLflow server on port {port} (pid {pid})" if found else
                   f"the MLflow server on port {port} (pid {pid}) was not running")
        return
    if auth_file and not auth:
        raise CliError("--auth-file needs --auth")
    if default_permission != "READ" and not auth:
        raise CliError("--default-permission needs --auth")
    creds = credentials(auth_file) if auth else None
    warning = exposure_warning(host, auth)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    _serve(backend_store_uri, artifacts_destination, host, port, workers, allowed_hosts, creds, default_permission,
           background, pid_file)


def _serve(backend_store_uri, artifacts_destination, host, port, workers, allowed_hosts, creds, default_permission,
           background, pid_file):
    from pathlib import Path

    from genre_models.tracking.server import AUTH_FOLDER, LocalServer, auth_environment, private_store, server_command
    from genre_models.util import write_private

    everywhere = host in ("0.0.0.0", "::")
    shown = "<this machine's name or address>" if everywhere else host
    uri = f"http://{shown}:{port}"
    where = (f"listening on {host}:{port} (every interface: reach it as {uri}; from here http://127.0.0.1:{port})"
             if everywhere else f"listening on {uri}")
    secured = (f"; basic auth on (admin {creds.username}; users and secret in {Path(AUTH_FOLDER).resolve()})"
               if creds else "")
    if background:
        srv = LocalServer(backend_store_uri, Path.cwd(), port, host, workers, artifacts_destination, allowed_hosts,
                          creds, default_permission).__enter__()
        write_private(pid_file, f"{srv.proc.pid}\n")  # only its owner may change what --stop signals
        click.echo(f"MLflow server {where} (pid {srv.proc.pid}, log {srv.log_path}){secured}; point sweeps at it with "
                   f"--tracking-uri {uri}; stop it with: benchmark server --stop --port {port}")
        return
    cmd = server_command(backend_store_uri, artifacts_destination, host, port, workers, allowed_hosts, creds is not None)
    click.echo(f"MLflow server {where}: runs in {backend_store_uri}, artifacts in {cmd[-1]}{secured}; "
               f"point sweeps at it with --tracking-uri {uri}")
    sys.stdout.flush()
    private_store(backend_store_uri, artifacts_destination)
    env = {**os.environ, **(auth_environment(creds, Path(AUTH_FOLDER), default_permission) if creds else {})}
    os.umask(0o077)  # what the server writes later (SQLite's journal, artifacts) is its owner's alone
    os.execve(cmd[0], cmd, env)
