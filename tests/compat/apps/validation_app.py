"""Validation models as Catzilla 0.2.3's docs write them (our own app)."""
from typing import List, Optional

from catzilla import BaseModel, Catzilla, Field, JSONResponse, Path, Query, ValidationError

app = Catzilla(auto_validation=True)


class Address(BaseModel):
    street: str = Field(min_length=5, max_length=100)
    zipcode: str = Field(regex=r"^\d{5}(-\d{4})?$")


class Member(BaseModel):
    id: int = Field(ge=1, le=1000)
    username: str = Field(min_length=3, max_length=20, regex=r"^[a-z0-9_]+$")
    age: int = Field(ge=13, le=120)
    active: bool = Field(default=True)
    bio: Optional[str] = Field(None, max_length=20)
    tags: List[str] = Field(default=[], max_items=3)
    address: Optional[Address] = None

    def __post_init__(self) -> None:
        if self.age < 18 and self.bio:
            raise ValidationError("members under 18 have no bio")


class Filters(BaseModel):
    role: Optional[str] = Field(None, regex=r"^(admin|user)$")
    min_age: int = Field(0, ge=0)
    active: bool = False
    tags: List[str] = []


@app.post("/members")
def create_member(request, member: Member):
    return JSONResponse({"member": member.dict(), "type": type(member).__name__}, status_code=201)


@app.put("/members/{member_id}")
async def replace_member(request, member: Member, member_id: int = Path(..., ge=1)):
    return {"member_id": member_id, "username": member.username, "city": None}


@app.get("/members")
def search(request, filters: Filters = Query()):
    return {"filters": filters.to_dict()}


@app.get("/constructed")
def constructed(request):
    try:
        Member(id=0, username="x", age=5)
    except ValidationError as exc:
        return {"error": str(exc)}
    return {"error": None}
