"""The sample documents and the JSON Schemas of what to take out of them,
for the document jobs of deploy/samples/jobs.jsonl (generate.py writes all
three from here):

    files/invoice.pdf        a two-page invoice (vector text and rules)
    files/form.pdf           a filled-in change-of-address form, one page
    files/receipt.png        a cafe receipt, as a till prints it (grayscale PNG)
    files/receipt-taxi.jpg   a taxi receipt (baseline grayscale JPEG)
    schemas/invoice.json, receipt.json, form.json

Python's standard library only, and deterministic (the same bytes on every
run): the PDFs are written by hand (Helvetica, which every PDF reader has,
so nothing is embedded), the PNG is zlib, and the JPEG comes from the small
baseline encoder below (ITU T.81: an 8x8 DCT, the Annex K luminance table
and Huffman codes). The images' text is drawn with a 5x7 pixel font of
capitals, digits and a little punctuation.

The schemas keep to what survives every provider's structured output:
`type`, `properties`, `required` (every property, as OpenAI's strict mode
wants), `additionalProperties: false`, `items` and `enum` (worker/provider.c,
provider_buf_schema, says what Anthropic and Gemini drop)."""
import math
import struct
import zlib

# ---------------------------------------------------------------- the 5x7 font

FONT = {
    "A": ".###.#...##...#######...##...##...#", "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.", "D": "###..#..#.#...##...##...##..#.###..",
    "E": "######....#....####.#....#....#####", "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####", "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.", "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#", "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##.#.##...##...##...#", "N": "#...##...###..##.#.##..###...##...#",
    "O": ".###.#...##...##...##...##...#.###.", "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#", "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.", "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.", "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.", "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..", "Z": "#####....#...#...#...#...#....#####",
    "0": ".###.#...##..###.#.###..##...#.###.", "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####", "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.", "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.", "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.", "9": ".###.#...##...#.####....#...#..##..",
    ".": "..........................##...##..", ",": ".....................##....#...#...",
    ":": ".....##...##.........##...##.......", "-": "...............#####...............",
    "/": ".........#...#...#...#...#.........", "#": ".#.#..#.#.#####.#.#.#####.#.#..#.#.",
    "*": ".....#.#.#.###.#####.###.#.#.#.....", "!": "..#....#....#....#....#.........#..",
    "%": "##...##..#...#...#...#...#..##...##", "&": ".##..#..#.#.#...#...#.#.##..#..##.#",
    "@": ".###.#...#....#.##.##.#.##.#.#.###.", "[": ".###..#....#....#....#....#....###.",
    "]": ".###....#....#....#....#....#..###.", "'": "..#....#...#.......................",
    " ": "." * 35,
}
assert all(len(g) == 35 for g in FONT.values())


class Canvas:
    """A grayscale raster, white (255) to start with."""

    def __init__(self, width, height):
        self.w, self.h = width, height
        self.px = bytearray([255]) * (width * height)

    def fill(self, x, y, w, h, value=0):
        for yy in range(max(y, 0), min(y + h, self.h)):
            row = yy * self.w
            for xx in range(max(x, 0), min(x + w, self.w)):
                self.px[row + xx] = value

    def frame(self, x, y, w, h, t=2):
        self.fill(x, y, w, t)
        self.fill(x, y + h - t, w, t)
        self.fill(x, y, t, h)
        self.fill(x + w - t, y, t, h)

    def text(self, x, y, s, scale=2, value=0):
        """Draws s (capitals) with its top left at x, y; a character is
        6 x scale wide."""
        for ch in s.upper():
            glyph = FONT.get(ch, FONT["*"])
            for i, cell in enumerate(glyph):
                if cell == "#":
                    self.fill(x + (i % 5) * scale, y + (i // 5) * scale, scale, scale, value)
            x += 6 * scale

    def lines(self, x, y, rows, scale=2, gap=4):
        """Draws rows of text downwards from x, y; returns the next y."""
        for row in rows:
            self.text(x, y, row, scale)
            y += 7 * scale + gap
        return y


# ---------------------------------------------------------------- PNG

def png(c):
    """An 8-bit grayscale PNG of canvas c (filter None on every row)."""
    raw = b"".join(b"\x00" + bytes(c.px[y * c.w:(y + 1) * c.w]) for y in range(c.h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", c.w, c.h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- JPEG (baseline, grayscale)

# ITU T.81 Annex K: the luminance quantization table (natural order) and
# the typical luminance Huffman tables (code counts per length, then values).
QUANT = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
         14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
         18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
         49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
DC_VALS = list(range(12))
AC_BITS = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d]
AC_VALS = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
    0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52,
    0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25,
    0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45,
    0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
    0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
    0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3,
    0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
    0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa]
assert sum(AC_BITS) == len(AC_VALS) == 162
# Coefficients in zigzag order (natural indexes): along each anti-diagonal,
# downwards on odd ones, upwards on even ones.
ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, i // 8 if (i // 8 + i % 8) % 2 else i % 8))
DCT = [[(math.sqrt(0.5) if u == 0 else 1.0) / 2 * math.cos((2 * x + 1) * u * math.pi / 16)
        for x in range(8)] for u in range(8)]


def huffman(bits, vals):
    """value -> (code, length), as Annex C assigns them."""
    table, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            table[vals[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return table


class Bits:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, code, length):
        self.acc, self.n = (self.acc << length) | code, self.n + length
        while self.n >= 8:
            self.n -= 8
            byte = (self.acc >> self.n) & 0xff
            self.out.append(byte)
            if byte == 0xff:
                self.out.append(0)  # byte stuffing
        self.acc &= (1 << self.n) - 1

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)  # pad with ones
        return bytes(self.out)


def magnitude(v):
    """(size category, its bits) of a coefficient."""
    size = abs(v).bit_length()
    return size, (v if v >= 0 else v + (1 << size) - 1)


def jpeg(c, quality=80):
    """A baseline grayscale JPEG of canvas c (width and height multiples of 8)."""
    assert c.w % 8 == 0 and c.h % 8 == 0
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    q = [min(max((v * scale + 50) // 100, 1), 255) for v in QUANT]
    dc, ac = huffman(DC_BITS, DC_VALS), huffman(AC_BITS, AC_VALS)
    bits, prev = Bits(), 0
    for by in range(0, c.h, 8):
        for bx in range(0, c.w, 8):
            f = [[c.px[(by + y) * c.w + bx + x] - 128 for x in range(8)] for y in range(8)]
            rows = [[sum(DCT[v][x] * f[y][x] for x in range(8)) for v in range(8)] for y in range(8)]
            coef = [0] * 64
            for u in range(8):
                for v in range(8):
                    s = sum(DCT[u][y] * rows[y][v] for y in range(8))
                    coef[u * 8 + v] = int(round(s / q[u * 8 + v]))
            zz = [coef[i] for i in ZIGZAG]
            size, extra = magnitude(zz[0] - prev)
            prev = zz[0]
            bits.put(*dc[size])
            if size:
                bits.put(extra, size)
            run = 0
            for v in zz[1:]:
                if v == 0:
                    run += 1
                    continue
                while run > 15:
                    bits.put(*ac[0xf0])
                    run -= 16
                size, extra = magnitude(v)
                bits.put(*ac[(run << 4) | size])
                bits.put(extra, size)
                run = 0
            if run:
                bits.put(*ac[0x00])  # end of block
    data = bits.flush()

    def segment(marker, payload):
        return struct.pack(">HH", marker, len(payload) + 2) + payload
    return (b"\xff\xd8"
            + segment(0xffe0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + segment(0xffdb, b"\x00" + bytes(q[i] for i in ZIGZAG))
            + segment(0xffc0, struct.pack(">BHHBBBB", 8, c.h, c.w, 1, 1, 0x11, 0))
            + segment(0xffc4, b"\x00" + bytes(DC_BITS) + bytes(DC_VALS))
            + segment(0xffc4, b"\x10" + bytes(AC_BITS) + bytes(AC_VALS))
            + segment(0xffda, b"\x01\x01\x00\x00\x3f\x00")
            + data + b"\xff\xd9")


# ---------------------------------------------------------------- PDF

class Page:
    """One A4 page's content stream: text in Helvetica, lines and boxes."""

    def __init__(self):
        self.ops = []

    def text(self, x, y, s, size=10, bold=False):
        esc = s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        self.ops.append(f"BT /{'F2' if bold else 'F1'} {size} Tf {x} {y} Td ({esc}) Tj ET")

    def line(self, x1, y1, x2, y2, width=0.8):
        self.ops.append(f"{width} w {x1} {y1} m {x2} {y2} l S")

    def box(self, x, y, w, h, width=0.8):
        self.ops.append(f"{width} w {x} {y} {w} {h} re S")

    def stream(self):
        return "\n".join(self.ops).encode("latin-1")


def pdf(pages):
    """A PDF 1.4 file of pages (Page objects), with a correct xref table."""
    n = len(pages)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % (5 + 2 * i) for i in range(n))
            + b"] /Count %d >>" % n,
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"]
    for i, p in enumerate(pages):
        content = p.stream()
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources "
                    b"<< /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>" % (6 + 2 * i))
        objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for k, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# ---------------------------------------------------------------- the documents

INVOICE_ITEMS = [("Cold-chain sensor, model CS-40", 24, 38.50),
                 ("Sensor gateway, 4G", 3, 212.00),
                 ("Installation, per site (half day)", 3, 180.00),
                 ("Route planning software, annual licence", 1, 1450.00),
                 ("Support plan, 12 months", 1, 360.00)]
INVOICE_VAT = 21


def invoice_pdf():
    p1, p2 = Page(), Page()
    p1.text(50, 780, "INVOICE", 22, bold=True)
    p1.text(380, 790, "Invoice no.  NW-20417", 10, bold=True)
    p1.text(380, 775, "Issue date   2026-03-02")
    p1.text(380, 760, "Due date     2026-04-01")
    p1.line(50, 740, 545, 740, 1.5)
    p1.text(50, 720, "From", 9, bold=True)
    for k, s in enumerate(["Northwind Logistics B.V.", "14 Harbour Road", "3011 AB Rotterdam, NL",
                           "VAT NL812345678B01"]):
        p1.text(50, 705 - 14 * k, s)
    p1.text(320, 720, "Bill to", 9, bold=True)
    for k, s in enumerate(["Oakridge Foods Ltd", "7 Mill Lane", "Edinburgh EH1 2AB, UK",
                           "Customer no. C-5521"]):
        p1.text(320, 705 - 14 * k, s)
    top = 620
    p1.box(50, top - 20 - 24 * len(INVOICE_ITEMS), 495, 20 + 24 * len(INVOICE_ITEMS))
    p1.line(50, top - 20, 545, top - 20)
    for x, head in ((58, "Description"), (330, "Qty"), (390, "Unit price"), (480, "Amount")):
        p1.text(x, top - 14, head, 9, bold=True)
    subtotal = 0.0
    for k, (desc, qty, price) in enumerate(INVOICE_ITEMS):
        y = top - 36 - 24 * k
        amount = qty * price
        subtotal += amount
        p1.text(58, y, desc)
        p1.text(330, y, str(qty))
        p1.text(390, y, f"{price:,.2f}")
        p1.text(480, y, f"{amount:,.2f}")
        if k:
            p1.line(50, y + 16, 545, y + 16, 0.3)
    p1.text(50, 60, "Continued on page 2.", 9)
    p1.text(480, 40, "Page 1 of 2", 8)

    tax = round(subtotal * INVOICE_VAT / 100, 2)
    p2.text(50, 780, "INVOICE NW-20417 (continued)", 12, bold=True)
    p2.line(50, 770, 545, 770, 1.5)
    for k, (label, value) in enumerate([("Subtotal", subtotal), (f"VAT {INVOICE_VAT}%", tax),
                                        ("Total due (EUR)", subtotal + tax)]):
        y = 740 - 20 * k
        p2.text(330, y, label, 11, bold=k == 2)
        p2.text(470, y, f"{value:,.2f}", 11, bold=k == 2)
    p2.line(330, 698, 545, 698)
    p2.text(50, 640, "Payment terms", 10, bold=True)
    p2.text(50, 624, "Net 30 days. Please quote the invoice number with your payment.")
    p2.text(50, 596, "Bank transfer", 10, bold=True)
    p2.text(50, 580, "IBAN NL91 ABNA 0417 1643 00   BIC ABNANL2A")
    p2.text(50, 564, "Account holder: Northwind Logistics B.V.")
    p2.box(50, 470, 495, 60)
    p2.text(58, 512, "Note", 9, bold=True)
    p2.text(58, 496, "Installation took place at three sites on 2026-02-24, 2026-02-25 and 2026-02-26.")
    p2.text(480, 40, "Page 2 of 2", 8)
    return pdf([p1, p2])


def form_pdf():
    p = Page()
    p.text(50, 790, "CHANGE OF ADDRESS", 18, bold=True)
    p.text(50, 770, "Pinecrest Bank - customer services - form CS-12", 9)
    p.line(50, 760, 545, 760, 1.5)
    fields = [("Customer number", "C-0088412"), ("Full name", "Ana Ribeiro"),
              ("Old address", "Rua Augusta 48, 1100-053 Lisboa, Portugal"),
              ("New address", "Kade 12, 3011 AB Rotterdam, Netherlands"),
              ("Effective from", "2026-05-01"), ("E-mail", "ana.ribeiro@example.com"),
              ("Phone", "+31 10 555 0199")]
    for k, (label, value) in enumerate(fields):
        y = 720 - 42 * k
        p.text(50, y + 18, label, 8, bold=True)
        p.box(50, y - 6, 495, 20)
        p.text(56, y, value, 11)
    y = 720 - 42 * len(fields) - 10
    p.text(50, y, "How should we contact you about this change?", 9, bold=True)
    for k, (label, ticked) in enumerate([("E-mail", True), ("Phone", False), ("Post", False)]):
        x = 50 + 120 * k
        p.box(x, y - 26, 12, 12)
        if ticked:
            p.line(x + 2, y - 24, x + 10, y - 16, 1.2)
            p.line(x + 2, y - 16, x + 10, y - 24, 1.2)
        p.text(x + 18, y - 24, label, 10)
    p.text(50, y - 70, "Signature", 8, bold=True)
    p.line(50, y - 100, 300, y - 100)
    p.text(60, y - 95, "A. Ribeiro", 14)
    p.text(330, y - 70, "Date", 8, bold=True)
    p.text(330, y - 95, "2026-04-11", 11)
    return pdf([p])


RECEIPT = ["      CORNER CAFE & BAKERY", "  RUA DAS FLORES 12, PORTO", "      NIF 509 884 213",
           "-" * 30, "DATE 2026-03-14    TIME 08:42", "RECEIPT # 004417", "-" * 30,
           "2 X CAPPUCCINO           5.60", "1 X CROISSANT            1.90",
           "1 X ORANGE JUICE         3.20", "1 X PASTEL DE NATA       1.40", "-" * 30,
           "TOTAL EUR               12.10", "  INCL. VAT 13%          1.39",
           "PAID BY CARD      **** 4417", "", "          THANK YOU!"]
TAXI = ["       METRO TAXI CO.", "CAB 2291       DRIVER 0412", "DATE 2026-04-02   23:17",
        "-" * 28, "FROM: CENTRAL STATION", "TO:   48 RUA AUGUSTA", "DISTANCE 7.4 KM",
        "-" * 28, "FARE                   14.80", "TIP                     2.00",
        "TOTAL EUR              16.80", "PAID CASH"]


def receipt_png():
    c = Canvas(392, 24 + 18 * len(RECEIPT) + 16)
    c.lines(16, 16, RECEIPT)
    return png(c)


def taxi_canvas():
    c = Canvas(360, 8 * ((24 + 18 * len(TAXI) + 16 + 7) // 8))
    c.frame(4, 4, c.w - 8, c.h - 8, 2)
    c.lines(16, 16, TAXI)
    return c


def receipt_jpg():
    return jpeg(taxi_canvas())


def files():
    """{name: bytes} of the sample files."""
    return {"invoice.pdf": invoice_pdf(), "form.pdf": form_pdf(),
            "receipt.png": receipt_png(), "receipt-taxi.jpg": receipt_jpg()}


# ---------------------------------------------------------------- schemas

def obj(props, **more):
    """An object schema whose every property is required (strict mode)."""
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False, **more}


S, N, I = {"type": "string"}, {"type": "number"}, {"type": "integer"}
CURRENCY = {"type": "string", "enum": ["EUR", "USD", "GBP"]}

SCHEMAS = {
    "invoice": obj({
        "invoice_number": S, "issue_date": S, "due_date": S,
        "seller": obj({"name": S, "address": S, "vat_id": S}),
        "buyer": obj({"name": S, "address": S, "customer_number": S}),
        "currency": CURRENCY,
        "line_items": {"type": "array", "items": obj({
            "description": S, "quantity": N, "unit_price": N, "amount": N})},
        "subtotal": N, "vat_rate_percent": N, "vat": N, "total": N, "payment_terms": S}),
    "receipt": obj({
        "merchant": S, "date": S, "time": S,
        "items": {"type": "array", "items": obj({"name": S, "quantity": I, "price": N})},
        "total": N, "currency": CURRENCY,
        "payment_method": {"type": "string", "enum": ["cash", "card", "mobile", "other"]},
        "category": {"type": "string", "enum": ["meals", "travel", "lodging", "supplies", "other"]}}),
    "form": obj({
        "form_type": {"type": "string", "enum": ["change_of_address", "other"]},
        "customer_number": S, "full_name": S, "old_address": S, "new_address": S,
        "effective_date": S, "email": S, "phone": S,
        "contact_preference": {"type": "string", "enum": ["email", "phone", "post"]},
        "signed": {"type": "boolean"}}),
}
