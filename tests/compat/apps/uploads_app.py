"""Uploads as Catzilla 0.2.3's docs read them: `request.files` and catzilla.exceptions."""
from catzilla import Catzilla, File, JSONResponse, UploadFile
from catzilla.exceptions import FileSizeError, MimeTypeError, format_upload_error

app = Catzilla()


def describe(files):
    if not files:
        return JSONResponse({"error": "no file"}, status_code=400)
    return JSONResponse({
        name: {"field_name": info["field_name"], "filename": info["filename"],
               "content_type": info["content_type"], "size": info["size"],
               "text": info["content"].decode(), "is_streamed": info["is_streamed"]}
        for name, info in files.items()
    }, status_code=201)


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
