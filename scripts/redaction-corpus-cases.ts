// The cases of the extended redaction corpus (issue 9), written for this project from what the anchors document, not
// copied from any public corpus: Presidio's recognizers (phone formats of many countries, card issuer ranges and
// lengths, IBAN country lengths), gitleaks' rule descriptions (vendor key prefixes and shapes), OWASP's session
// management cheat sheet (session cookie names: JSESSIONID, PHPSESSID, ASP.NET_SessionId, CFID/CFTOKEN), RFC 9110
// header names, and hard negatives of the kinds such rules tend to destroy. Values come from a seeded generator, so
// `npx tsx scripts/redaction-corpus.ts --write` always writes the same fixture.
import type { CorpusCase } from "./redaction-corpus.ts";

type Pii = { type: string; value: string };
type Draft = { text: string; pii: Pii[] };

/** mulberry32: a small seeded generator, so the corpus is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(9);
const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
const chars = (alphabet: string, n: number): string => Array.from({ length: n }, () => pick([...alphabet])).join("");
const DIGITS = "0123456789";
const HEX = "0123456789abcdef";
const ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const B64URL = ALNUM + "_-";
const B64 = ALNUM + "+/";

function luhnDigit(body: string): string {
  let total = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    total += d;
  }
  return String((10 - (total % 10)) % 10);
}
/** A Luhn-valid number of the given length with the given prefix. */
function card(prefix: string, length: number): string {
  const body = prefix + chars(DIGITS, length - prefix.length - 1);
  return body + luhnDigit(body);
}
function group(digits: string, sizes: number[], sep: string): string {
  const out: string[] = [];
  let at = 0;
  for (const size of sizes) {
    out.push(digits.slice(at, at + size));
    at += size;
  }
  if (at < digits.length) out.push(digits.slice(at));
  return out.filter(Boolean).join(sep);
}
/** An IBAN with valid check digits for the country and BBAN given. */
function iban(country: string, bban: string): string {
  const numeric = (bban + country + "00").toUpperCase().replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rest = 0;
  for (const ch of numeric) rest = (rest * 10 + Number(ch)) % 97;
  return country + String(98 - rest).padStart(2, "0") + bban;
}

const drafts: Draft[] = [];
const pos = (type: string, value: string, text: string) => drafts.push({ text, pii: [{ type, value }] });
const neg = (text: string) => drafts.push({ text, pii: [] });

// ---- e-mail: internationalised addresses (RFC 6531 local parts, IDN domains, Unicode and punycode TLDs) ----------
const unicodeMail = [
  "josé.garcía@correo.example.es", "müller@bücher.example", "françois@société.example.fr", "ana@empresa.ejemplo.com",
  "σοφία@παράδειγμα.δοκιμή", "иван@пример.рф", "ольга.петрова@почта.example.ru", "用户@例子.广告", "张伟@公司.中国",
  "たろう@例え.テスト", "사용자@예시.한국", "δημήτρης@example.gr", "søren@eksempel.dk", "łukasz@przykład.pl",
  "jürgen.groß@straße.example.de", "chloé@école.example.fr", "info@xn--bcher-kva.example", "ops@xn--80ak6aa92e.xn--p1ai",
  "नाम@उदाहरण.भारत", "user@ไทย.example.th", "çağrı@örnek.example.tr", "zoë+alerts@example.nl", "anaïs@café.example",
  "mañana@niño.example.mx", "øystein@blåbær.example.no", "ähnlich@übung.example.at", "support@münchen.example.de",
  "kontakt@dänemark.example", "émile@québec.example.ca", "юлия@компания.бел", "ivan@почта.рф",
  "أحمد@مثال.موقع", "josé@example.com", "marie-thérèse@example.org", "björk@tónlist.example.is",
];
const mailFrames = ["reply to {v} today", "invite sent to {v}", "bounce: <{v}> mailbox full", "from: {v}",
  "user {v} signed in", "cc {v}, please", "owner={v}", "{v}"];
unicodeMail.forEach((v, i) => pos("email", v, mailFrames[i % mailFrames.length]!.replace("{v}", v)));
["ann@example.com", "bo.li@mail.example.org", "K.Nowak@EXAMPLE.PL", "x_y-z@sub.example.co.uk", "n8n+bot@example.io"]
  .forEach((v) => pos("email", v, `notify ${v} when the job ends`));

// ---- phone numbers: national and international formats of many countries (Presidio's PhoneRecognizer regions and
// the numbering plans libphonenumber describes). Bare national digits carry a context word, as people write them. ---
const phones: Array<[string, string]> = [
  ["GB", "020 7946 0958"], ["GB", "07700 900123"], ["GB", "+44 20 7946 0958"], ["GB", "+44 (0)161 496 0753"],
  ["DE", "030 12345678"], ["DE", "0151 23456789"], ["DE", "(030) 1234567"], ["DE", "089/1234567"], ["DE", "+49 30 901820"],
  ["DE", "0049 30 12345678"], ["FR", "01 23 45 67 89"], ["FR", "06.12.34.56.78"], ["FR", "+33 6 12 34 56 78"],
  ["BE", "0490 75 40 81"], ["BE", "02 123 45 67"], ["BE", "+32 490 75 40 81"], ["NL", "020-1234567"], ["NL", "06-12345678"],
  ["NL", "+31 6 12345678"], ["IT", "06 1234 5678"], ["IT", "+39 312 345 6789"], ["ES", "+34 912 34 56 78"],
  ["CH", "044 668 18 00"], ["CH", "+41 44 668 18 00"], ["AT", "01 234 5678"], ["AT", "0664 1234567"], ["SE", "08-123 456 78"],
  ["SE", "070-123 45 67"], ["AU", "(02) 9876 5432"], ["AU", "0412 345 678"], ["AU", "+61 412 345 678"], ["NZ", "09 123 4567"],
  ["NZ", "021 123 4567"], ["JP", "03-1234-5678"], ["JP", "090-1234-5678"], ["JP", "+81 3-1234-5678"], ["KR", "02-123-4567"],
  ["KR", "010-1234-5678"], ["IL", "03-123-4567"], ["IL", "050-123-4567"], ["ZA", "011 123 4567"], ["ZA", "082 123 4567"],
  ["CN", "010-12345678"], ["CN", "0755-1234567"], ["IN", "011-23456789"], ["IN", "09876 543210"], ["IN", "+91 98765 43210"],
  ["BR", "(11) 91234-5678"], ["BR", "(21) 2345-6789"], ["BR", "+55 11 91234-5678"], ["MX", "+52 55 1234 5678"],
  ["RU", "8 (495) 123-45-67"], ["RU", "+7 495 123-45-67"], ["PL", "+48 601 234 567"], ["IE", "01 234 5678"], ["IE", "087 123 4567"],
  ["US", "(415) 555-2671"], ["US", "415.555.2671"], ["CA", "604-555-0199"], ["LT", "(37) 788-063"], ["AR", "011 4123-4567"],
];
const phoneFrames = ["call me at {v}", "phone: {v}", "tel. {v} (office)", "mobile {v}", "reach the desk on {v}", "fax {v}",
  "contact number {v}", "WhatsApp {v}", "customer said: ring {v} after 5", "{v}"];
phones.forEach(([, v], i) => pos("phone", v, phoneFrames[i % phoneFrames.length]!.replace("{v}", v)));
// Bare digits that only a context word makes a phone number.
const contextPhones: Array<[string, string]> = [
  ["US", "467 3395"], ["ES", "912 34 56 78"], ["PL", "601 234 567"], ["IT", "312 345 6789"], ["MX", "55 1234 5678"],
  ["CN", "138 0013 8000"], ["BR", "91234-5678"], ["IN", "98765 43210"], ["BE", "0490754081"], ["US", "4155552671"],
];
contextPhones.forEach(([, v], i) => pos("phone", v, ["tel: {v}", "phone {v}", "call {v}", "mobile: {v}", "Telefon {v}"][i % 5]!.replace("{v}", v)));
["tel:+14155552671", "tel:0490754081", "tel:020-7946-0958"].forEach((v) => pos("phone", v.slice(4), `<a href="${v}">call us</a>`));
// Under a phone key in JSON the key is the context: the corpus places every case under "note", so say it in words.
pos("phone", "467 3395", "phone_number: 467 3395");
pos("phone", "601 234 567", "Numer telefonu: 601 234 567");

// ---- cards: issuer ranges and lengths (Presidio's CreditCardRecognizer; ISO/IEC 7812 IINs), separators, glued ----
const cardSpecs: Array<[string, number, number[]]> = [
  ["4", 16, [4, 4, 4, 4]], ["4", 13, [4, 4, 5]], ["4", 19, [4, 4, 4, 4, 3]], ["51", 16, [4, 4, 4, 4]], ["55", 16, [4, 4, 4, 4]],
  ["2221", 16, [4, 4, 4, 4]], ["2720", 16, [4, 4, 4, 4]], ["34", 15, [4, 6, 5]], ["37", 15, [4, 6, 5]], ["36", 14, [4, 6, 4]],
  ["300", 14, [4, 6, 4]], ["6011", 16, [4, 4, 4, 4]], ["65", 16, [4, 4, 4, 4]], ["644", 16, [4, 4, 4, 4]],
  ["3528", 16, [4, 4, 4, 4]], ["3589", 16, [4, 4, 4, 4]], ["1800", 15, [4, 4, 4, 3]], ["2131", 15, [4, 4, 4, 3]],
  ["62", 16, [4, 4, 4, 4]], ["62", 19, [4, 4, 4, 4, 3]], ["2200", 16, [4, 4, 4, 4]], ["50", 12, [4, 4, 4]],
  ["6759", 12, [4, 4, 4]], ["5018", 12, [4, 4, 4]], ["6304", 16, [4, 4, 4, 4]], ["6761", 19, [4, 4, 4, 4, 3]],
];
const cardLayouts = [
  (d: string, g: number[]) => group(d, g, " "), (d: string) => d, (d: string, g: number[]) => group(d, g, "-"),
  (d: string, g: number[]) => group(d, g, "."),
];
const cardFrames = ["paid with {v}", "card {v} declined", "order #{v}-001 shipped", "ref:{v}", "PAN={v};", "cc {v} exp 04/29",
  "charge to {v} ok", "#{v}"];
cardSpecs.forEach(([prefix, length, groups], i) => {
  for (let k = 0; k < 2; k++) {
    const digits = card(prefix, length);
    const layout = cardLayouts[(i + k) % cardLayouts.length]!;
    const frame = cardFrames[(i * 2 + k) % cardFrames.length]!;
    // Glued frames take the digits as they are; the others take the layout.
    const v = frame.includes("#{v}-001") || frame.startsWith("#") ? digits : layout(digits, groups);
    pos("card", v, frame.replace("{v}", v));
  }
});

// ---- IBANs: the registry's country lengths, upper and lower case, grouped and not ---------------------------------
const ibanSpecs: Array<[string, string]> = [
  ["DE", "37040044" + "0532013000"], ["FR", "2004101005" + "0500013M02606"], ["GB", "WEST12345698765432"],
  ["NL", "ABNA0417164300"], ["ES", "21000418450200051332"], ["IT", "X0542811101000000123456"], ["BE", "539007547034"],
  ["AT", "1904300234573201"], ["CH", "0076201162385295" + "7"], ["PL", "109010140000071219812874"], ["SE", "50000000058398257466"],
  ["NO", "86011117947"], ["DK", "00400440116243"], ["FI", "21000001234561"], ["PT", "000201231234567890154"],
  ["IE", "AIBK93115212345678"], ["LU", "0010001234567891"], ["CZ", "08000000192000145399"], ["HU", "117730161111101800000000"],
  ["RO", "AAAA1B31007593840000"], ["GR", "01101250000000012300695"], ["SK", "12000000198742637541"], ["SI", "263300012039086"],
  ["HR", "10010051863000160"], ["LT", "1000011101001000"], ["LV", "BANK0000435195001"], ["EE", "2200221020145685"],
  ["BG", "BNBG96611020345678"], ["MT", "MALT011000012345MTLCAST001S"], ["CY", "002001280000001200527600"],
];
ibanSpecs.forEach(([country, bban], i) => {
  const value = iban(country, bban);
  const grouped = value.match(/.{1,4}/g)!.join(" ");
  const forms = [grouped.toLowerCase(), value.toLowerCase(), grouped, value];
  const v = forms[i % forms.length]!;
  pos("iban", v, ["payout to {v} scheduled", "iban: {v}", "refund {v} (customer)", "SEPA {v}"][i % 4]!.replace("{v}", v));
});

// ---- US social security numbers (Presidio's UsSsnRecognizer: area not 000/666/9xx, group and serial not zero) -----
for (let i = 0; i < 12; i++) {
  const area = String(100 + Math.floor(rand() * 565)).padStart(3, "0");
  const v = `${area}-${String(10 + Math.floor(rand() * 89))}-${String(1000 + Math.floor(rand() * 8999))}`;
  pos("ssn", i % 3 === 2 ? v.replaceAll("-", " ") : v, ["ssn {v} on file", "SSN: {v}", "applicant {v}"][i % 3]!.replace("{v}", i % 3 === 2 ? v.replaceAll("-", " ") : v));
}

// ---- IP addresses ------------------------------------------------------------------------------------------------
["203.0.113.7", "198.51.100.23", "10.12.0.254", "2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567:890a",
  "2001:0db8:0000:0000:0000:ff00:0042:8329"].forEach((v) => pos("ip", v, `client ${v} blocked after 5 attempts`));

// ---- JWTs ---------------------------------------------------------------------------------------------------------
for (let i = 0; i < 14; i++) {
  const header = ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ", "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9"][i % 3]!;
  const v = `${header}.eyJ${chars(B64URL, 40 + (i % 5) * 9)}.${chars(B64URL, 43)}`;
  pos("jwt", v, ["id_token {v}", "jwt={v}", "got token {v} from the IdP", "{v}"][i % 4]!.replace("{v}", v));
}

// ---- vendor API keys (gitleaks' rules: prefixes, alphabets and lengths) --------------------------------------------
const vendorKeys: Array<() => string> = [
  () => "ghp_" + chars(ALNUM, 36), () => "gho_" + chars(ALNUM, 36), () => "ghs_" + chars(ALNUM, 36), () => "ghu_" + chars(ALNUM, 36),
  () => "github_pat_" + chars(ALNUM, 22) + "_" + chars(ALNUM, 59), () => "glpat-" + chars(B64URL, 20), () => "glptt-" + chars(HEX, 40),
  () => "xoxb-" + chars(DIGITS, 12) + "-" + chars(DIGITS, 13) + "-" + chars(ALNUM, 24), () => "xoxp-" + chars(DIGITS, 12) + "-" + chars(DIGITS, 12) + "-" + chars(DIGITS, 13) + "-" + chars(HEX, 32),
  () => "xoxa-2-" + chars(ALNUM, 30), () => "xoxr-" + chars(ALNUM, 40), () => "xapp-1-A" + chars("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10) + "-" + chars(DIGITS, 13) + "-" + chars(HEX, 64),
  () => "sk_live_" + chars(ALNUM, 24), () => "sk_test_" + chars(ALNUM, 24), () => "rk_live_" + chars(ALNUM, 24), () => "rk_test_" + chars(ALNUM, 99),
  () => "sk-" + chars(ALNUM, 48), () => "sk-proj-" + chars(B64URL, 56), () => "sk-ant-api03-" + chars(B64URL, 93) + "AA",
  () => "AIza" + chars(B64URL, 35), () => "ya29." + chars(B64URL, 120), () => "AKIA" + chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
  () => "ASIA" + chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16), () => "AC" + chars(HEX, 32), () => "SK" + chars(HEX, 32),
  () => "key-" + chars(HEX, 32), () => "pubkey-" + chars(HEX, 32), () => "npm_" + chars(ALNUM, 36),
  () => "pypi-AgEIcHlwaS5vcmc" + chars(B64URL, 70), () => "dop_v1_" + chars(HEX, 64), () => "doo_v1_" + chars(HEX, 64),
  () => "SG." + chars(B64URL, 22) + "." + chars(B64URL, 43), () => chars(ALNUM, 3) + "8Q~" + chars(ALNUM + "_~.-", 34).replace(/[-.~_]$/, "x"),
  () => "whsec_" + chars(ALNUM, 32),
];
const keyFrames = ["using key {v} for the upload", "export TOKEN_VALUE={v}", "leaked {v} in the log", "{v}", "client init({v})",
  "curl -u {v}: https://api.example.com"];
vendorKeys.forEach((make, i) => {
  for (let k = 0; k < 2; k++) {
    const v = make();
    pos("api_key", v, keyFrames[(i + k) % keyFrames.length]!.replace("{v}", v));
  }
});
pos("api_key", "T0ABCDEFG/B0HIJKLMNOP/" + "Xy7Qw2Lk9Ps4Mn1Rt6Vb3Zc8", `webhook https://hooks.slack.com/services/T0ABCDEFG/B0HIJKLMNOP/Xy7Qw2Lk9Ps4Mn1Rt6Vb3Zc8 posts alerts`);

// ---- secrets in HTTP header lines (RFC 9110 Authorization, vendor X- headers) --------------------------------------
const headerNames = ["X-Auth-Token", "X-API-Key", "X-Api-Token", "X-Access-Token", "Api-Key", "X-Vault-Token",
  "PRIVATE-TOKEN", "X-Goog-Api-Key", "Ocp-Apim-Subscription-Key", "X-Amz-Security-Token", "X-CSRF-Token", "X-Session-Token"];
headerNames.forEach((name, i) => {
  for (let k = 0; k < 2; k++) {
    const v = chars(i % 2 ? HEX : B64URL, 24 + ((i + k) % 4) * 8);
    pos("secret_header", v, [`${name}: ${v}`, `request headers: ${name}: ${v}, Accept: */*`, `curl -H '${name}: ${v}' https://api.example.com/v1`][(i + k) % 3]!);
  }
});
for (let i = 0; i < 10; i++) {
  const user = chars("abcdefghijklmnopqrstuvwxyz", 6) + ":" + chars(ALNUM, 12);
  const basic = Buffer.from(user).toString("base64");
  pos("secret_header", basic, [`Authorization: Basic ${basic}`, `authorization: basic ${basic}`, `Proxy-Authorization: Basic ${basic}`][i % 3]!);
}
for (let i = 0; i < 6; i++) {
  const v = chars(B64URL, 40);
  pos("secret_header", v, [`Authorization: Bearer ${v}`, `Authorization: Token ${v}`, `Authorization: ${v}`][i % 3]!);
}

// ---- cookies and session ids (OWASP: JSESSIONID, PHPSESSID, ASP.NET_SessionId, CFID/CFTOKEN; framework defaults) ---
const sessionNames = ["JSESSIONID", "PHPSESSID", "ASP.NET_SessionId", "CFID", "CFTOKEN", "session", "sess", "sid",
  "connect.sid", "laravel_session", "ci_session", "_session_id", "sessionid"];
sessionNames.forEach((name, i) => {
  const v = name === "CFID" ? chars(DIGITS, 8) : name === "JSESSIONID" ? chars("0123456789ABCDEF", 32) : chars(HEX, 26) + chars(DIGITS, 2);
  pos("session_cookie", v, [`Cookie: ${name}=${v}`, `Set-Cookie: ${name}=${v}; Path=/; HttpOnly; Secure`, `GET /cart;jsessionid=${v} HTTP/1.1`.replace("jsessionid", name === "JSESSIONID" ? "jsessionid" : name), `${name}=${v}`][i % 4]!);
});
for (let i = 0; i < 22; i++) {
  const name = pick(sessionNames);
  const v = chars(HEX, 20) + chars(DIGITS, 4);
  const frames = [
    `Cookie: theme=dark; ${name}=${v}; lang=en`, `set-cookie: ${name}=${v}; Max-Age=3600; SameSite=Lax`,
    `replayed request with ${name}=${v} from another IP`, `https://shop.example.com/checkout?${name}=${v}&step=2`,
  ];
  pos("session_cookie", v, frames[i % frames.length]!);
}

// ---- credentials in URL query strings (OAuth 2.0 parameters, signed URLs) ----------------------------------------
const queryNames = ["access_token", "refresh_token", "client_secret", "auth_token", "api_key", "id_token", "apikey", "token",
  "key", "sig", "X-Amz-Signature", "code", "password"];
queryNames.forEach((name, i) => {
  for (let k = 0; k < 3; k++) {
    const v = chars(name === "X-Amz-Signature" ? HEX : B64URL, 20 + ((i + k) % 5) * 6);
    const frames = [`GET https://api.example.com/v2/me?${name}=${v} 200`, `redirect to /callback#${name}=${v}&state=xyz`,
      `https://files.example.net/a.pdf?expires=1735689600&${name}=${v}`,
      ["code", "key", "sig", "token"].includes(name) ? `POST /oauth/token?grant_type=x&${name}=${v}` : `retrying ${name}=${v}`];
    pos("url_credential", v, frames[(i + k) % frames.length]!);
  }
});

// ---- private-key PEM blocks (gitleaks' private-key rule: RSA, EC, OPENSSH, PKCS#8, encrypted, PGP) ----------------
const pemKinds = ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
  "DSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK"];
for (let i = 0; i < 32; i++) {
  const kind = pemKinds[i % pemKinds.length]!;
  const lines = Array.from({ length: 3 + (i % 4) }, () => chars(B64, 64));
  const body = lines.join("\n");
  const block = `-----BEGIN ${kind}-----\n${body}\n-----END ${kind}-----`;
  const text = [block, `key file contents:\n${block}\n`, `-----BEGIN ${kind}-----\n${lines[0]}\n(truncated)`][i % 3]!;
  pos("private_key", lines[0]!, text);
}

// ---- long hex/base64 secrets in a secret-ish context (a name, "key:" in prose, environment lines) -----------------
const contextNames = ["AWS_SECRET_ACCESS_KEY=", "aws_secret_access_key = ", "secret_key: ", "client_secret: ", "api key: ",
  "key: ", "twilio auth token: ", "signing secret ", "webhook_secret=", "AccountKey=", "SharedAccessKey=", "private_key: ",
  "MAILGUN_SIGNING_KEY=", "encryption key: ", "access token: ", "token: ", "secret: "];
contextNames.forEach((name, i) => {
  for (let k = 0; k < 2; k++) {
    const v = (i + k) % 2 ? chars(HEX, 32 + (k * 8)) : chars(B64, 40) + (name.startsWith("Account") ? "==" : "");
    const text = name.endsWith(" ") && !name.includes(":") && !name.includes("=") ? `${name}${v}` : `${name}${v}`;
    pos("contextual_secret", v.replace(/=+$/, ""), name === "signing secret " ? `slack signing secret: ${v}` : text);
  }
});
pos("contextual_secret", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE9", "DefaultEndpointsProtocol=https;AccountName=files;AccountKey=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE9==;EndpointSuffix=core.windows.net");
pos("contextual_secret", "hunter2Pa55", "login --password=hunter2Pa55 --user ann");
pos("contextual_secret", "S3cr3t!pw", "DB_PASSWORD=S3cr3t!pw");

// ---- hard negatives ---------------------------------------------------------------------------------------------
// Epoch milliseconds and microseconds, some Luhn-valid (the card rule must not take them).
for (let i = 0; i < 24; i++) {
  const ms = String(1_600_000_000_000 + Math.floor(rand() * 200_000_000_000));
  const v = i % 2 ? ms.slice(0, 12) + luhnDigit(ms.slice(0, 12)) : i % 3 ? ms : ms + chars(DIGITS, 3);
  neg([`ts=${v}`, `created_at_ms: ${v}`, `event at ${v} processed`, `{"t": ${v}}`][i % 4]!);
}
// W3C trace context, content digests, git SHAs, request ids.
for (let i = 0; i < 14; i++) neg(`traceparent: 00-${chars(HEX, 32)}-${chars(HEX, 16)}-01`);
for (let i = 0; i < 10; i++) neg(`trace_id ${chars(HEX, 32)} span ${chars(HEX, 16)}`);
for (let i = 0; i < 14; i++) neg([`image sha256:${chars(HEX, 64)} pulled`, `digest: sha256:${chars(HEX, 64)}`, `integrity sha512-${chars(B64, 86)}==`][i % 3]!);
for (let i = 0; i < 14; i++) neg([`commit ${chars(HEX, 40)}`, `merged ${chars(HEX, 7)} into main`, `git checkout ${chars(HEX, 12)}`, `revision=${chars(HEX, 40)}`][i % 4]!);
for (let i = 0; i < 8; i++) neg(`request ${chars(HEX, 8)}-${chars(HEX, 4)}-4${chars(HEX, 3)}-a${chars(HEX, 3)}-${chars(HEX, 12)} done`);
for (let i = 0; i < 6; i++) neg(`etag "${chars(HEX, 32)}"; cache key: ${chars(HEX, 40)}`);
// Model names with dates, token usage counts.
["claude-3-5-sonnet-20241022", "gpt-4o-2024-08-06", "claude-3-opus-20240229", "gemini-1.5-pro-002", "gpt-4-0613",
  "mistral-large-2407", "claude-3-haiku-20240307", "o1-preview-2024-09-12", "text-embedding-3-large", "llama-3.1-70b-instruct"]
  .forEach((model, i) => neg([`model=${model}`, `switched to ${model}`, `model: ${model}, temperature 0.2`][i % 3]!));
for (let i = 0; i < 16; i++) {
  const p = 100 + Math.floor(rand() * 9000);
  const c = 10 + Math.floor(rand() * 4000);
  neg([`prompt_tokens: ${p}, completion_tokens: ${c}, total_tokens: ${p + c}`, `usage input_tokens=${p} output_tokens=${c}`,
    `tokens used: ${p}`, `max_tokens: ${c * 2}`][i % 4]!);
}
// Prices and amounts in several locales.
["€1.234,56", "1 234,56 €", "$1,234.56", "USD 12,345,678.90", "¥123,456", "₹1,23,456.00", "CHF 1'234.50", "1.234.567,89 ₫",
  "R$ 1.234,56", "kr 12 345,00", "zł 4 599,99", "£99.99", "total 1 234 567 EUR", "amount: 12345678 cents", "paid 4 500,00 MAD",
  "price 1,299.00 (was 1,499.00)", "balance -2 345,10 €", "₩1,234,000", "SEK 9 999", "invoice total 123 456 789 IDR"]
  .forEach((v) => neg(`charged ${v}`));
// Dates and times in several formats.
["2024-01-15T10:30:00Z", "2024-01-15 10:30:00.123+01:00", "15.01.2024", "01/15/2024", "15/01/2024 10:30", "2024年1月15日",
  "Mon, 15 Jan 2024 10:30:00 GMT", "20240115T103000Z", "10:30:45.123", "15 Jan 2024, 10:30", "2024-W03-1", "1.15.2024",
  "2024/01/15 10:30:00", "Q1 2024", "12 03 2024", "08:30 - 17:00", "2024-01-15/2024-02-15", "t+00:05:30"]
  .forEach((v) => neg(`at ${v}`));
// Coordinates, ISBNs, postal codes, version strings, ids that look like numbers.
["52.520008, 13.404954", "-33.8688, 151.2093", "40°44′55″N 73°59′11″W", "lat=48.8566&lon=2.3522", "geo:37.7749,-122.4194",
  "35.6762° N, 139.6503° E"].forEach((v) => neg(`location ${v}`));
["ISBN 978-3-16-148410-0", "ISBN-10 0-306-40615-2", "isbn 9780306406157", "ISBN 978 0 306 40615 7", "ISSN 2049-3630",
  "ISBN 979-10-90636-07-1"].forEach((v) => neg(v));
["75008 Paris", "SW1A 1AA London", "10115 Berlin", "Boston, MA 02134-1234", "100-0001 Tokyo", "H3Z 2Y7 Montréal",
  "00-950 Warszawa", "1010 Wien", "8001 Zürich", "2000 Antwerpen", "28013 Madrid", "D02 X285 Dublin", "01310-100 São Paulo",
  "110001 New Delhi", "2000 NSW", "0150 Oslo"].forEach((v) => neg(`ship to ${v}`));
["v2.14.0-beta.3", "1.2.3", "10.15.7", "Chrome/120.0.6099.109", "Windows 10.0.19045.3693", "node v20.11.1", "python 3.12.1",
  "build 2024.01.15.1", "api version 2023-10-16", "openssl 3.0.13", "kernel 6.5.0-1014-aws", "postgres 15.5 (Debian 15.5-1)",
  "rel-2.0.0-rc.1", "release 24.04 LTS"].forEach((v) => neg(`running ${v}`));
["order 100234567 shipped", "invoice INV-2024-000123", "PR #12345 merged", "ticket JIRA-4821", "tracking 1Z999AA10123456784",
  "GTIN 4006381333931", "EAN 5901234123457", "account id 123456789012", "build #20240115", "job 7781234 finished",
  "error code 0x80070005", "HTTP 404 after 1532 ms", "retry 3 of 5", "page 12 of 340", "row 1048576", "port 54321 open",
  "pid 48213 exited 137", "size 1048576 bytes", "duration_ms=12345", "count 1234 5678 (two shards)"]
  .forEach((v) => neg(v));
// Words near secrets that are not secrets.
["password_changed_at: 2024-01-15", "password reset requested", "password: reset by admin", "session_count=3", "session=expired",
  "sort key: created_at", "primary key: id", "public key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA", "Cookie consent: accepted",
  "token: 1532", "tokens_per_second=41.5", "secret: none", "api key rotation due 2024-03-01", "auth method: oauth",
  "the key is in the drawer", "monkey: island", "keyboard: qwerty", "session ended after 30 minutes", "call ended after 12 minutes",
  "phone screen at 10:30", "call count 1234567 this month", "dial-in 3 times", "tel aviv office", "contact form submitted",
  "text 12 chars", "hotel room 1204", "cell B12 = 4500", "fax machine offline", "mobile app 2.14.0", "ring buffer 65536",
  "key=value pairs", "?page=2&sort=price", "https://example.com/search?q=shoes&size=42", "code=200 ok", "key: F5"]
  .forEach((v) => neg(v));
// Ordinary log lines and prose.
["opened the preferences pane and changed the theme", "user clicked export, 3 files", "sync finished in 00:05:30",
  "cache hit ratio 0.973", "memory 512MiB of 2048MiB", "cpu 12.5% load 0.42 0.38 0.35", "queued 42 jobs; 3 failed",
  "deploy #418 to eu-west-1 ok", "feature flag dark_mode=on", "A/B test variant B (n=1532)", "temperature 21.5°C",
  "resolution 1920x1080 @ 60Hz", "file report_2024-01-15.pdf (2.4 MB)", "vector dim 1536", "batch 500 of 10000",
  "latency p95 30.7 ms p99 43.9 ms", "exit status 0", "lines 120-180 changed", "color #1a2b3c", "ratio 16:9"]
  .forEach((v) => neg(v));
// Base64 that is content, not a secret.
for (let i = 0; i < 6; i++) neg([`thumbnail data:image/png;base64,iVBORw0KGgo${chars(B64, 60)}`, `attachment ${chars(B64, 76)}`][i % 2]!);

/** The extended corpus cases, numbered from `firstId`. */
export function buildCases(firstId: number): CorpusCase[] {
  return drafts.map((d, i) => ({ id: firstId + i, text: d.text, pii: d.pii }));
}
