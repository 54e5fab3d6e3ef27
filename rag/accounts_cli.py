"""The `tokens` (API) and `users` (app sign-in) commands of `python -m rag`: accounts only, no
index opened and no model loaded."""

from __future__ import annotations

import getpass
import sys

from rag.accounts import ROLES


def add_account_commands(commands) -> None:
    """`tokens` for the API, `users` for the app's sign-in; both need no index."""
    tokens = commands.add_parser("tokens", help="API bearer tokens: create, list, revoke")
    actions = tokens.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="print a new token once (stdout), to keep now")
    create.add_argument("name")
    create.add_argument("--role", choices=ROLES, default="reader",
                        help="reader: ask, see sources and own conversations; admin: also "
                             "upload, delete and settings (default: reader)")
    create.set_defaults(run=_token_create, engine=False)
    actions.add_parser("list", help="names, roles and use; never the secrets").set_defaults(
        run=_token_list, engine=False)
    revoke = actions.add_parser("revoke", help="the token stops working at once")
    revoke.add_argument("name")
    revoke.set_defaults(run=_token_revoke, engine=False)

    users = commands.add_parser("users", help="password accounts of the app: add, list, "
                                              "password, remove")
    actions = users.add_subparsers(required=True, metavar="ACTION")
    add = actions.add_parser("add", help="a new account; the password is asked for")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="reader",
                     help="reader or admin (default: reader)")
    password = actions.add_parser("password", help="set a user's password")
    password.add_argument("name")
    for action, run in ((add, _user_add), (password, _user_password)):
        action.add_argument("--password-stdin", action="store_true",
                            help="read the password from the first line of stdin")
        action.set_defaults(run=run, engine=False)
    actions.add_parser("list", help="names, roles, last sign-in").set_defaults(
        run=_user_list, engine=False)
    remove = actions.add_parser("remove", help="the account can no longer sign in")
    remove.add_argument("name")
    remove.set_defaults(run=_user_remove, engine=False)


def _token_create(accounts, args) -> int:
    try:
        secret = accounts.tokens.create(args.name, args.role)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(secret)
    print(f"token {args.name} ({args.role}) created: keep it now, it is not shown again",
          file=sys.stderr)
    return 0


def _token_list(accounts, args) -> int:
    for token in accounts.tokens.list():
        print(f"{token.name}  {token.role}  {token.prefix}...  created {token.created_at}  "
              f"last used {token.last_used_at or 'never'}")
    return 0


def _outcome(done: bool, missing: str, said: str) -> int:
    """Exit code 0 and `said` when the action found its account, 1 and `missing` otherwise."""
    if not done:
        print(missing, file=sys.stderr)
        return 1
    print(said)
    return 0


def _token_revoke(accounts, args) -> int:
    return _outcome(accounts.tokens.revoke(args.name), f"no token named {args.name}",
                    f"revoked token {args.name}")


def _read_password(args) -> str:
    """From stdin's first line for scripts, else asked twice at the terminal, never echoed."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password: use --password-stdin")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise ValueError("the passwords differ")
    return password


def _user_add(accounts, args) -> int:
    try:
        accounts.users.add(args.name, args.role, _read_password(args))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"added user {args.name} ({args.role})")
    return 0


def _user_password(accounts, args) -> int:
    if args.name not in {user.name for user in accounts.users.list()}:  # before asking
        print(f"no user named {args.name}", file=sys.stderr)
        return 1
    try:
        changed = accounts.users.set_password(args.name, _read_password(args))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    return _outcome(changed, f"no user named {args.name}",  # not changed: removed meanwhile
                    f"password of {args.name} changed")


def _user_list(accounts, args) -> int:
    for user in accounts.users.list():
        print(f"{user.name}  {user.role}  created {user.created_at}  "
              f"last sign-in {user.last_login_at or 'never'}")
    return 0


def _user_remove(accounts, args) -> int:
    return _outcome(accounts.users.remove(args.name), f"no user named {args.name}",
                    f"removed user {args.name}")
