"""The one check of the command line's bad-input contract: one `error:` line on stderr, no traceback, exit status."""

from keras_sagan import cli


def cli_error(capsys, argv, status=cli.EXIT_ERROR):
    """Runs `keras-sagan ARGV` in-process; asserts the exit `status` and one `error: ...` line; returns stderr."""
    assert cli.main(argv) == status
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err
