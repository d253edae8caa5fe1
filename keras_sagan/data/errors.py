"""Errors raised by the keras_sagan data pipelines."""


class DatasetNotFoundError(ValueError):
    """Raised when a dataset's files are missing, hold no readable images, or fail to download.

    It subclasses `ValueError` so that callers which already catch bad-argument errors (a wrong
    path is a bad argument) keep working.

    Example:

    ```python
    try:
        ds = load_image_folder("/no/such/folder")
    except DatasetNotFoundError as err:
        print(err)
    ```
    """
