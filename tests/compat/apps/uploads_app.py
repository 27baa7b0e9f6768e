"""Uploads as Catzilla 0.2.3's docs read them: `request.files`, `File(max_size=,
max_files=, allowed_types=)`, `save_to(directory)` and catzilla.exceptions."""
import os
import tempfile
from typing import List

from catzilla import Catzilla, File, JSONResponse, UploadFile
from catzilla.exceptions import FileSizeError, MimeTypeError, format_upload_error

app = Catzilla()


SAVED = tempfile.mkdtemp(prefix="compat-uploads-")


def text_of(info):
    """As 0.2.3's docs read an upload: a large one from its temporary file."""
    if info["is_streamed"]:
        with open(info["temp_path"], "rb") as spooled:
            return spooled.read().decode()
    return info["content"].decode()


def describe(files):
    if not files:
        return JSONResponse({"error": "no file"}, status_code=400)
    return JSONResponse({
        name: {"field_name": info["field_name"], "filename": info["filename"],
               "content_type": info["content_type"], "size": info["size"],
               "text": text_of(info), "is_streamed": info["is_streamed"]}
        for name, info in files.items()
    }, status_code=201)


@app.post("/spooled")
def spooled(request):
    info = request.files["file"]
    content = info["content"].decode() if info["content"] is not None else None
    return {"is_streamed": info["is_streamed"], "content": content, "temp_path": info["temp_path"],
            "exists": info["temp_path"] is not None and os.path.exists(info["temp_path"]), "text": text_of(info)}


@app.post("/limited")
def limited(file: UploadFile = File(max_size="1KB", allowed_types=["text/plain"])):
    return {"size": file.size}


@app.post("/several")
def several(files: List[UploadFile] = File(max_files=2, max_size=100)):
    return {"names": [f.filename for f in files]}


@app.post("/save")
def save(file: UploadFile = File()):
    saved = file.save_to(SAVED, stream=True)
    with open(saved, "rb") as written:
        return {"dir": os.path.dirname(saved) == SAVED, "name": os.path.basename(saved),
                "content": written.read().decode(), "again": file.read().decode()}


@app.post("/upload")
def upload(request):
    return describe(request.files)


@app.post("/upload-async")
async def upload_async(request):
    files = request.files
    return describe(files)


@app.post("/images")
def images(request):
    info = request.files.get("image")
    if info is None or info["content_type"] != "image/png":
        raise MimeTypeError("only image/png is taken here")
    return {"size": info["size"]}


@app.post("/checked")
def checked(request):
    try:
        raise FileSizeError("too big for this handler")
    except FileSizeError as exc:
        return JSONResponse(format_upload_error(exc), status_code=exc.status_code)


@app.post("/declared")
async def declared(request, file: UploadFile = File()):
    return {"size": file.size, "files": sorted(request.files)}
