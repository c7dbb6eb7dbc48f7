#!/usr/bin/python3
"""Writes the sample jobs `promptyard dev` submits, with the documents and
schemas they carry:

    /usr/bin/python3 deploy/samples/generate.py [DIR]

into DIR (default: this script's directory) jobs.jsonl, files/ and
schemas/. 250 jobs of the kinds a batch pipeline sends an LLM, each a
native job (SPEC §2) with metadata.task set so that rules can route on it:

    summarize    news items, meeting notes, incident reports, product docs
                 (one to twelve paragraphs: a few hundred bytes to ~6 KB)
    extract      invoices, order e-mails, job postings, contact signatures
                 -> a JSON object (response_format json_object)
    classify     support tickets and product reviews -> one label
    code_review  short C, Python, Go, JavaScript and SQL changes with a bug
    document     scans and PDFs (SPEC §13): an invoice, receipts and a form
                 (files/, made by documents.py) sent inline as content parts,
                 -> fields that validate against schemas/ (json_schema), tool
                 calls (approve or flag an invoice, file an expense), a tool
                 conversation and an arithmetic check with reasoning_effort

The text is synthetic (made-up companies, people and numbers) and
deterministic: the same files come out on every run. No job names a model,
a budget or a strategy unless it says why (a few ask for `cheapest` or
`fastest`), so the file works with any configuration's catalog; `dev`
rotates strategies over the rest. The document jobs carry their files
inline (base64): an https:// URL would need a server the demo does not run
(the worker fetches URL parts itself for providers that take none, and
only over https).
"""
import base64
import json
import random
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the samples
import documents  # noqa: E402

R = random.Random(20261122)

COMPANIES = ["Northwind Logistics", "Bluefin Analytics", "Harbor & Vine", "Quillstone Press",
             "Keller Robotics", "Aster Health", "Marlow Energy", "Tessellate Labs", "Oakridge Foods",
             "Lumen Freight", "Pinecrest Bank", "Vantage Mills", "Copperleaf Studios",
             "Redwater Utilities", "Sable Systems", "Everfield Farms"]
PEOPLE = ["Ana Ribeiro", "Tomasz Nowak", "Priya Raman", "Kwame Mensah", "Lena Fischer",
          "Diego Alvarez", "Mei Tanaka", "Oluwaseun Adeyemi", "Sofia Rossi", "Jonas Berg",
          "Fatima Zahra", "Liam O'Connor", "Chen Wei", "Isabel Martín", "Noah Goldberg",
          "Aiko Suzuki", "Mateus Costa", "Hannah Schmidt"]
CITIES = ["Rotterdam", "Lisbon", "Austin", "Nairobi", "Osaka", "Kraków", "Montréal", "Porto Alegre",
          "Edinburgh", "Bengaluru", "Gdańsk", "Valparaíso"]
PRODUCTS = ["cold-chain sensors", "route planning software", "solar inverters", "payroll service",
            "warehouse robots", "billing platform", "mobile banking app", "smart thermostats",
            "inventory scanners", "data pipeline service"]

NEWS = [
    "{company} said on {day} that it would open a second distribution hub in {city}, adding "
    "about {n} jobs over the next two years.",
    "The decision follows a year in which demand for its {product} grew faster than the "
    "company had planned, stretching delivery times to as much as {m} weeks.",
    "Analysts at several banks noted that the expansion will weigh on margins in the short "
    "term, since the new site will not run at full capacity before the end of next year.",
    "{person}, the company's chief operating officer, told reporters that the location was "
    "chosen for its port access and for a regional grant that covers part of the building cost.",
    "Local officials welcomed the news but cautioned that housing in the area is already "
    "scarce, and that the city's transport plan does not yet account for the extra traffic.",
    "The company also confirmed that it had settled a long-running dispute with a former "
    "supplier over late shipments, without disclosing the terms.",
    "Shares rose {p} percent in morning trading before giving back part of the gain.",
    "A union representative said workers at the existing site had been promised that no "
    "positions would move, a commitment the company repeated in its statement.",
    "Competitors have taken a different route: several have chosen to automate existing "
    "warehouses rather than build new ones, betting that labour will stay expensive.",
    "The hub is expected to handle {n} pallets a day once fully running, roughly a third of "
    "the company's current volume.",
    "Environmental groups asked for the site to be connected to the rail network, arguing "
    "that trucks alone would add to congestion on the ring road.",
    "The company said it would publish a detailed plan, including energy use and expected "
    "emissions, before construction starts in the spring.",
]
MEETING = [
    "Attendees: {person}, {person2}, {person3}. Notes taken by {person}.",
    "Item 1: the Q{q} roadmap. {person2} proposed moving the {product} release by two weeks "
    "to fit the security review; nobody objected, but marketing needs to be told today.",
    "Item 2: hiring. Two offers are out, one was declined over salary. {person3} will ask "
    "finance whether the band for senior engineers can move by {p} percent.",
    "Item 3: the outage on {day}. Root cause was an expired certificate on an internal "
    "service; the alert fired but went to a channel nobody watches anymore.",
    "Action: {person2} to move certificate alerts to the on-call rotation by Friday.",
    "Item 4: budget. Cloud spend is {p} percent over plan, mostly from a test cluster that "
    "was never turned off. {person} will add an owner tag check to the weekly report.",
    "Item 5: customer feedback. Three large accounts asked for single sign-on; sales thinks "
    "it blocks at least one renewal worth about {n} thousand a year.",
    "Decision: SSO goes into the next quarter, ahead of the reporting redesign.",
    "Item 6: the office move. The lease ends in {m} months; {person3} is collecting options "
    "in {city} and will bring three to the next meeting.",
    "Open question: whether to keep the Friday demo, which fewer people attend each month.",
    "Next meeting in two weeks, same time. {person} will send the agenda a day ahead.",
]
INCIDENT = [
    "Summary: between 02:10 and 03:45 UTC on {day}, {pct} percent of requests to the "
    "{product} API failed with HTTP 503.",
    "Impact: about {n} customers saw failed payments or timeouts; no data was lost.",
    "Detection: the error-rate alert fired at 02:14; the on-call engineer, {person}, "
    "acknowledged it at 02:21.",
    "Cause: a configuration change rolled out at 02:05 halved the connection pool of the "
    "database proxy, and the retry policy of the clients turned the shortage into a storm.",
    "Mitigation: the change was rolled back at 03:30; error rates returned to normal by "
    "03:45 once client retries backed off.",
    "Why it was not caught: the staging environment runs with a tenth of production traffic, "
    "so the smaller pool was never exhausted there.",
    "What went well: the rollback itself took four minutes, and status page updates went out "
    "every fifteen minutes.",
    "What went badly: the first forty minutes were spent on the database itself, which was "
    "healthy, because the proxy's metrics are not on the main dashboard.",
    "Follow-ups: add proxy pool saturation to the main dashboard ({person2}); load-test "
    "configuration changes of the proxy before rollout ({person3}); cap client retries with "
    "jitter and a budget ({person}).",
    "Customer communication: affected accounts received credits of {p} percent of their "
    "monthly fee, as the service agreement requires.",
]
PRODUCT_DOC = [
    "The {product} exposes a REST API versioned in the path; version 2 is current and version "
    "1 will stop answering on {day}.",
    "Authentication uses bearer tokens issued per workspace. Tokens expire after {m} days and "
    "can be rotated without downtime by keeping two active at once.",
    "Rate limits are per token: {n} requests per minute, with bursts up to twice that. A "
    "429 answer carries a Retry-After header in seconds.",
    "Webhooks are signed with HMAC-SHA256 over the raw body; receivers must compare the "
    "signature in constant time and reject deliveries older than five minutes.",
    "Pagination is cursor-based. Clients should treat cursors as opaque strings: their format "
    "changes between releases.",
    "Errors are JSON objects with a stable machine code and a human message. Clients should "
    "branch on the code, never on the message.",
    "Bulk imports accept up to {n} records per request as JSON Lines; each line is validated "
    "on its own and the answer lists the line numbers that failed.",
    "Data is stored in the region chosen when the workspace is created; moving a workspace "
    "between regions requires a support request and takes up to {m} days.",
]

INVOICE = """INVOICE {inv}
{company}
{street}, {city}

Bill to: {company2}, attn. {person}
Date: 2026-{mm:02d}-{dd:02d}        Due: net {net}

Item                                   Qty     Unit       Total
{lines}
                                              Subtotal  {sub:>9.2f}
                                              VAT {vat}%   {tax:>9.2f}
                                              TOTAL     {total:>9.2f} {cur}

Payment to IBAN {iban}. Questions: billing@{domain}"""
ITEMS = [("Sensor module SM-4", 18.5), ("Installation, per hour", 95.0), ("Annual support plan", 1200.0),
         ("Replacement battery pack", 42.0), ("Route optimisation licence", 310.0),
         ("Training session (half day)", 640.0), ("Mounting bracket", 7.25), ("Data export add-on", 150.0)]

ORDER_MAIL = """From: {person} <{email}>
Subject: Order change for PO {po}

Hi team,

Could you change our order {po} from {q1} units of the {product} to {q2}? We would also
like delivery moved to {city} instead of the address on file, no later than {day}.
If the price changes, please send a new quote before shipping.

Thanks,
{person}
{title}, {company}
Phone {phone}"""

JOB_POST = """{company} is hiring a {title} in {city} ({mode}).

You will work on our {product}, in a team of {n} engineers. We expect {years}+ years
of experience with {skill1} and {skill2}; experience with {skill3} is a plus.
Salary range: {low}-{high} {cur} per year, plus equity. Apply by {day}."""

SIGNATURE = """Best regards,

{person}
{title} | {company}
{street}, {city}
M: {phone} | {email}
Please note my new address from {day}."""

TICKETS = [
    ("I was charged twice for the March invoice, the second charge is on my card statement "
     "from the 14th. Please refund it.", "billing"),
    ("The export button does nothing on Firefox, works on Chrome. No error shown.", "bug"),
    ("It would be great if reports could be scheduled to arrive by e-mail every Monday.",
     "feature_request"),
    ("I can't log in since I changed my phone, the 2FA codes are rejected.", "account"),
    ("Your invoice shows VAT but we are a registered business in another EU country, "
     "reverse charge should apply.", "billing"),
    ("When I upload a CSV with more than 10,000 rows the page freezes and then shows a blank "
     "screen.", "bug"),
    ("Please add a dark mode, the white background is hard on the eyes at night.",
     "feature_request"),
    ("How do I transfer ownership of the workspace to a colleague who is leaving the "
     "company?", "account"),
    ("The API returns 500 for any request with a page size above 100, documentation says the "
     "max is 500.", "bug"),
    ("We'd like to pay annually instead of monthly, is there a discount?", "billing"),
    ("Is there a way to get notified in Slack instead of e-mail?", "feature_request"),
    ("Our team lead left and nobody has admin rights anymore.", "account"),
    ("Where can I find your office opening hours for the holidays?", "other"),
    ("Your newsletter links are broken in the latest issue.", "other"),
]
REVIEWS = [
    ("Setup took five minutes and it has worked every day since. Battery lasts longer than "
     "advertised.", "positive"),
    ("Stopped syncing after the last update, support says a fix is coming but it's been two "
     "weeks.", "negative"),
    ("Does what it says. The app is a bit slow, but the hardware is solid.", "mixed"),
    ("Returned it. The sensor readings were off by several degrees compared to a reference "
     "thermometer.", "negative"),
    ("Excellent customer service: they replaced a faulty unit within two days, no questions "
     "asked.", "positive"),
    ("Good value for the price, though the manual is confusing and the mount feels cheap.",
     "mixed"),
    ("Honestly the best purchase I made this year for the warehouse.", "positive"),
    ("It's fine. Nothing special, nothing wrong.", "neutral"),
]

CODE = [
    ("c", """static char *join(const char *a, const char *b)
{
	char *out = malloc(strlen(a) + strlen(b));
	strcpy(out, a);
	strcat(out, b);
	return out;
}""", "off-by-one: no room for the terminating NUL; malloc result unchecked"),
    ("c", """int read_config(const char *path, struct cfg *c)
{
	FILE *f = fopen(path, "r");
	char line[256];
	while (fgets(line, sizeof line, f)) {
		if (parse_line(line, c) < 0)
			return -1;
	}
	fclose(f);
	return 0;
}""", "fopen unchecked; the file leaks on the error path"),
    ("c", """void remove_item(struct list *l, int id)
{
	for (struct node *n = l->head; n; n = n->next) {
		if (n->id == id) {
			unlink_node(l, n);
			free(n);
		}
	}
}""", "use after free: n->next is read after free(n)"),
    ("python", """def average(values):
    total = 0
    for v in values:
        total += v
    return total / len(values)""", "division by zero on an empty list"),
    ("python", """def add_tag(item, tag, tags=[]):
    tags.append(tag)
    item["tags"] = tags
    return item""", "mutable default argument shared between calls"),
    ("python", """import subprocess

def archive(name):
    subprocess.run(f"tar czf /backups/{name}.tgz /data/{name}", shell=True, check=True)""",
     "shell injection through name"),
    ("python", """def read_users(path):
    users = []
    f = open(path)
    for line in f:
        users.append(line.split(",")[1])
    return users""", "file never closed; IndexError on lines without a comma"),
    ("go", """func fetchAll(urls []string) []string {
	var out []string
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out = append(out, get(u))
		}()
	}
	wg.Wait()
	return out
}""", "data race on out; loop variable captured (before Go 1.22)"),
    ("go", """func (s *Store) Get(key string) (string, error) {
	s.mu.Lock()
	v, ok := s.m[key]
	if !ok {
		return "", ErrNotFound
	}
	s.mu.Unlock()
	return v, nil
}""", "mutex left locked on the not-found path"),
    ("javascript", """async function loadAll(ids) {
  const results = [];
  ids.forEach(async (id) => {
    const r = await fetch(`/api/items/${id}`);
    results.push(await r.json());
  });
  return results;
}""", "forEach does not await: returns an empty array"),
    ("javascript", """function isAdmin(user) {
  return user.roles.indexOf('admin');
}""", "indexOf returns -1 (truthy) when absent and 0 (falsy) when first"),
    ("sql", """SELECT c.name, SUM(o.total) AS revenue
FROM customers c
LEFT JOIN orders o ON o.customer_id = c.id
WHERE o.created_at >= '2026-01-01'
GROUP BY c.name;""", "WHERE on the outer table turns the LEFT JOIN into an inner join; grouping by name merges namesakes"),
    ("sql", """UPDATE accounts SET balance = balance - 100 WHERE id = 42;
UPDATE accounts SET balance = balance + 100 WHERE id = 43;""",
     "no transaction: a failure between the statements loses money"),
]


def fill(template, **extra):
    people = R.sample(PEOPLE, 3)
    values = dict(company=R.choice(COMPANIES), company2=R.choice(COMPANIES), city=R.choice(CITIES),
                  product=R.choice(PRODUCTS), person=people[0], person2=people[1], person3=people[2],
                  day=f"{R.choice(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday'])} "
                      f"{R.randint(1, 28)} {R.choice(['March', 'April', 'June', 'September', 'November'])}",
                  n=R.choice([40, 120, 250, 600, 1800, 4500]), m=R.randint(2, 14),
                  p=R.choice([2, 3, 4.5, 7, 12, 18]), q=R.randint(1, 4), pct=R.choice([3, 8, 15, 40]))
    values.update(extra)
    return template.format(**values)


def paragraphs(bank, count):
    start = R.randrange(len(bank))
    picked = [bank[(start + i) % len(bank)] for i in range(min(count, len(bank)))]
    return [fill(p) for p in picked]


def job(i, task, messages, **fields):
    j = {"id": f"sample-{i:03d}-{task}", "messages": messages,
         "metadata": {"task": task, "sample": i}}
    j.update(fields)
    return j


def summarize_jobs(start, count):
    kinds = [("news article", NEWS), ("meeting notes", MEETING), ("incident report", INCIDENT),
             ("product documentation", PRODUCT_DOC)]
    out = []
    for k in range(count):
        kind, bank = kinds[k % len(kinds)]
        size = R.choice([1, 2, 3, 4, 6, 8, 10, 12])
        doc = "\n\n".join(paragraphs(bank, size))
        # Longer documents get a few copies of the bank to reach several KB.
        if size >= 10 and k % 3 == 0:
            doc += "\n\n" + "\n\n".join(paragraphs(bank, len(bank)))
        # And a few long reports that bundle every kind (~8 KB).
        if k % 16 == 5:
            doc += "\n\nAppendix.\n\n" + "\n\n".join(
                p for _, b in kinds for p in paragraphs(b, len(b)))
        style = R.choice(["in three bullet points", "in one paragraph of at most 80 words",
                          "as a headline and two sentences", "for an executive in five lines"])
        out.append(job(start + k, "summarize", [
            {"role": "system", "content": f"You summarize {kind}s for busy readers, {style}. "
                                          "Keep names and numbers exact; do not add facts."},
            {"role": "user", "content": doc}],
            max_tokens=R.choice([150, 200, 300, 400])))
    return out


def invoice():
    lines, sub = [], 0.0
    for name, price in R.sample(ITEMS, R.randint(1, 5)):
        qty = R.randint(1, 40)
        total = qty * price
        sub += total
        lines.append(f"{name:<38} {qty:>4} {price:>9.2f} {total:>10.2f}")
    vat = R.choice([0, 9, 19, 21, 23])
    tax = round(sub * vat / 100, 2)
    return fill(INVOICE, inv=f"{R.choice(['INV', 'F', 'NW'])}-{R.randint(1000, 99999)}",
                street=f"{R.randint(1, 220)} {R.choice(['Harbour Road', 'Rua Augusta', 'Main St', 'Kade'])}",
                mm=R.randint(1, 12), dd=R.randint(1, 28), net=R.choice([14, 30, 45]),
                lines="\n".join(lines), sub=sub, vat=vat, tax=tax, total=sub + tax,
                cur=R.choice(["EUR", "USD", "GBP"]),
                iban=f"NL{R.randint(10, 99)}BANK0{R.randint(100000000, 999999999)}",
                domain=R.choice(["northwind.example", "bluefin.example", "aster.example"]))


def extract_jobs(start, count):
    out = []
    for k in range(count):
        kind = k % 4
        if kind == 0:
            doc = invoice()
            keys = "invoice_number, issuer, customer, date, due_days, currency, subtotal, vat_rate, total, line_items (array of {description, quantity, unit_price})"
        elif kind == 1:
            doc = fill(ORDER_MAIL, email=f"buyer{R.randint(1, 99)}@example.com",
                       po=f"PO-{R.randint(10000, 99999)}", q1=R.randint(10, 500), q2=R.randint(10, 500),
                       title=R.choice(["Procurement lead", "Operations manager", "Buyer"]),
                       phone=f"+{R.randint(1, 49)} {R.randint(100, 999)} {R.randint(1000, 9999)}")
            keys = "purchase_order, requested_quantity, previous_quantity, delivery_city, deliver_by, contact_name, contact_email, contact_phone"
        elif kind == 2:
            low = R.choice([55, 70, 90, 110])
            doc = fill(JOB_POST, title=R.choice(["Senior Backend Engineer", "Data Engineer", "SRE", "Staff Engineer"]),
                       mode=R.choice(["hybrid", "remote", "on site"]), years=R.randint(2, 8),
                       skill1=R.choice(["Go", "C", "Python", "Rust"]), skill2=R.choice(["Kafka", "PostgreSQL", "Kubernetes"]),
                       skill3=R.choice(["Redis", "gRPC", "Terraform"]), low=low * 1000, high=(low + 30) * 1000,
                       cur=R.choice(["EUR", "USD"]))
            keys = "company, title, location, work_mode, min_years, required_skills (array), nice_to_have (array), salary_min, salary_max, currency, apply_by"
        else:
            doc = fill(SIGNATURE, title=R.choice(["Head of Sales", "CFO", "Account Manager"]),
                       street=f"{R.randint(1, 220)} {R.choice(['Harbour Road', 'Rua Augusta', 'Main St'])}",
                       phone=f"+{R.randint(1, 49)} {R.randint(100, 999)} {R.randint(1000, 9999)}",
                       email=f"contact{R.randint(1, 99)}@example.org")
            doc = "Thanks for the call today, I'll send the contract by Friday.\n\n" + doc
            keys = "name, title, company, street, city, mobile, email, address_change_date"
        out.append(job(start + k, "extract", [
            {"role": "system", "content": "Extract data from the document. Answer with one JSON "
                                          f"object with exactly these keys: {keys}. Use null for "
                                          "anything the document does not state."},
            {"role": "user", "content": doc}],
            response_format={"type": "json_object"}, capabilities=["json"], temperature=0,
            max_tokens=R.choice([300, 400, 500])))
    return out


def classify_jobs(start, count):
    out = []
    for k in range(count):
        if k % 3 == 2:
            text, _ = R.choice(REVIEWS)
            labels = "positive, negative, mixed, neutral"
            what = "product review"
        else:
            text, _ = R.choice(TICKETS)
            labels = "billing, bug, feature_request, account, other"
            what = "support ticket"
        prefix = R.choice(["", "Hello, ", "Hi support, ", "URGENT: ", ""])
        extra = {"strategy": "cheapest"} if k % 4 == 0 else {}
        out.append(job(start + k, "classify", [
            {"role": "system", "content": f"Classify the {what}. Answer with one label of: "
                                          f"{labels}. No other words."},
            {"role": "user", "content": prefix + text}],
            max_tokens=8, temperature=0, **extra))
    return out


def review_jobs(start, count):
    out = []
    for k in range(count):
        lang, code, _ = CODE[k % len(CODE)]
        ask = R.choice(["Review this change. List real bugs first, then risky style issues, "
                        "each with the line and a fix.",
                        "Find the bug in this code and explain it in two sentences, then show "
                        "the corrected code.",
                        "Is this safe to merge? Answer yes or no, then give the reasons."])
        extra = {"strategy": "fastest"} if k % 5 == 0 else {}
        out.append(job(start + k, "code_review", [
            {"role": "system", "content": "You are a careful senior engineer doing code review."},
            {"role": "user", "content": f"{ask}\n\n```{lang}\n{code}\n```"}],
            max_tokens=R.choice([400, 600, 800]), max_cost_usd=0.05, **extra))
    return out


def b64(data):
    return base64.b64encode(data).decode()


def file_part(files, name):
    """A content part carrying the file inline (SPEC §13)."""
    if name.endswith(".pdf"):
        return {"type": "document", "data": b64(files[name]), "media_type": "application/pdf"}
    media = "image/png" if name.endswith(".png") else "image/jpeg"
    return {"type": "image", "data": b64(files[name]), "media_type": media}


def schema_format(name, schema=None):
    return {"type": "json_schema", "json_schema": {
        "name": name, "schema": schema or documents.SCHEMAS[name], "strict": True}}


def tool(name, description, params):
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": documents.obj(params)}}


EXTRACTOR = ("You extract data from business documents. Copy names, numbers and codes exactly "
             "as printed; write dates as YYYY-MM-DD.")


def document_jobs(start, files):
    """The document jobs: fields out of PDFs and scans (json_schema), tool
    calls, a tool conversation and a check with reasoning."""
    S, N = documents.S, documents.N
    currency = documents.CURRENCY

    def doc_job(k, kind, parts, text, **fields):
        j = job(start + k, "document", [
            {"role": "system", "content": EXTRACTOR},
            {"role": "user", "content": [{"type": "text", "text": text}] + parts}],
            temperature=0, **fields)
        j["metadata"]["document"] = kind
        return j

    png, jpg = files["receipt.png"], files["receipt-taxi.jpg"]
    payment_tools = [
        tool("approve_payment", "Schedule the invoice for payment.",
             {"invoice_number": S, "amount": N, "currency": currency, "pay_by": S}),
        tool("flag_for_review", "Send the invoice to a person, with the reason.",
             {"invoice_number": S, "reason": {"type": "string", "enum": [
                 "amount_mismatch", "missing_purchase_order", "duplicate", "other"]},
              "note": S})]
    expense_tool = tool("add_expense", "File one expense of the report.", {
        "merchant": S, "date": S, "amount": N, "currency": currency,
        "category": documents.SCHEMAS["receipt"]["properties"]["category"]})
    fx_tool = tool("convert_currency", "Convert an amount at today's rate.",
                   {"amount": N, "from": currency, "to": currency})
    check = documents.obj({"arithmetic_ok": {"type": "boolean"},
                           "problems": {"type": "array", "items": S}})
    jobs = [
        doc_job(0, "invoice", [file_part(files, "invoice.pdf")],
                "Extract this invoice (two pages).", response_format=schema_format("invoice"),
                max_tokens=900),
        doc_job(1, "receipt", [file_part(files, "receipt.png")],
                "Extract this receipt for the expense report.",
                response_format=schema_format("receipt"), max_tokens=500),
        doc_job(2, "receipt", [file_part(files, "receipt-taxi.jpg")],
                "Extract this taxi receipt for the expense report.",
                response_format=schema_format("receipt"), max_tokens=500),
        doc_job(3, "form", [file_part(files, "form.pdf")],
                "Extract the filled-in form.", response_format=schema_format("form"),
                max_tokens=500),
        # OpenAI's own part shapes pass as they are (an OpenAI Batch line's body).
        doc_job(4, "form", [{"type": "file", "file": {
            "filename": "form.pdf", "file_data": "data:application/pdf;base64,"
            + b64(files["form.pdf"])}}],
            "Extract the filled-in form.", response_format=schema_format("form"),
            max_tokens=500),
        doc_job(5, "receipt", [{"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + b64(png)}}],
            "Extract this receipt for the expense report.",
            response_format=schema_format("receipt"), max_tokens=500),
        doc_job(6, "invoice", [file_part(files, "invoice.pdf")],
                "Check this invoice against purchase order PO-88120 (24 sensors, 3 gateways, "
                "3 installations, one licence, one support plan) and approve it for payment "
                "or flag it for review.", tools=payment_tools, tool_choice="required",
                max_tokens=400),
        doc_job(7, "receipt", [file_part(files, "receipt.png"), file_part(files, "receipt-taxi.jpg")],
                "File each of these receipts as an expense of my trip to Porto and Lisbon.",
                tools=[expense_tool], tool_choice="auto", max_tokens=400),
        doc_job(9, "invoice", [file_part(files, "invoice.pdf")],
                "Check the invoice's arithmetic: quantity times unit price on every line, the "
                "subtotal, the VAT and the total.", reasoning_effort="low",
                response_format=schema_format("invoice_check", check), max_tokens=600),
    ]
    # A tool conversation: the model asked for a conversion, here is the result.
    conv = job(start + 8, "document", [
        {"role": "user", "content": [
            {"type": "text", "text": "What did this breakfast cost in US dollars?"},
            file_part(files, "receipt.png")]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_fx_1", "type": "function", "function": {
                "name": "convert_currency",
                "arguments": json.dumps({"amount": 12.10, "from": "EUR", "to": "USD"})}}]},
        {"role": "tool", "tool_call_id": "call_fx_1",
         "content": json.dumps({"amount": 13.07, "currency": "USD", "rate": 1.0802})}],
        tools=[fx_tool], max_tokens=200)
    conv["metadata"]["document"] = "receipt"
    jobs.insert(8, conv)
    return jobs


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    files = documents.files()
    for name, data in files.items():
        write(out / "files" / name, data)
    for name, schema in documents.SCHEMAS.items():
        write(out / "schemas" / f"{name}.json", (json.dumps(schema, indent=2) + "\n").encode())
    jobs = (summarize_jobs(1, 80) + extract_jobs(81, 60) + classify_jobs(141, 60)
            + review_jobs(201, 40))
    # A few in the prompt shorthand, as pipelines often send them.
    for j in jobs[::37]:
        msgs = j.pop("messages")
        j["prompt"] = msgs[0]["content"] + "\n\n" + msgs[-1]["content"]
    # Interleave the kinds, as a real queue would have them.
    R.shuffle(jobs)
    # The document jobs near the front, one in five, so that the first 50
    # (promptyard dev --count 50) hold every kind of them.
    for k, j in enumerate(document_jobs(241, files)):
        jobs.insert(2 + 5 * k, j)
    with open(out / "jobs.jsonl", "w", encoding="utf-8") as f:
        for j in jobs:
            f.write(json.dumps(j, ensure_ascii=False) + "\n")
    print(f"{out}: {len(jobs)} jobs, {len(files)} files, {len(documents.SCHEMAS)} schemas")


if __name__ == "__main__":
    main()
