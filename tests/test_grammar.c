/*
 * test_grammar.c — grammar-constrained sampling: the GBNF parser
 * (core/grammar_parse.c: what it accepts, and errors with their line:column),
 * the recognizer on text (core/grammar.c: accept/reject, repetition bounds,
 * Unicode and UTF-8 split across feeds, ambiguity), the JSON Schema
 * converter (core/json_schema.c: the grammar it makes accepts documents
 * valid for the schema and rejects invalid ones), and sampling with a
 * grammar on real models (stories260K, a synthetic Qwen2): at temperature 1
 * with several seeds every output is a sentence of the grammar, including
 * grammars the model would never follow on its own.
 */
#include "testutil.h"

#include "grammar.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hearth/hearth.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers -------------------------------------------------------------------- */

static struct hr_grammar *compile(const char *gbnf)
{
    struct hr_grammar *g = NULL;
    struct hr_err err;
    int rc = hr_grammar_new(NULL, gbnf, NULL, &g, &err);
    cr_assert_eq(rc, 0, "grammar rejected (%d): %s\n%s", rc, err.msg, gbnf);
    return g;
}

/* The whole text is a sentence of the grammar. */
static bool matches(const char *gbnf, const char *text)
{
    struct hr_grammar *g = compile(gbnf);
    bool ok = grammar_accept_text(g, text, strlen(text)) == 0 && grammar_can_end(g);
    hr_grammar_free(g);
    return ok;
}

/* The text can be continued into a sentence (it is a live prefix). */
static bool prefix_ok(const char *gbnf, const char *text)
{
    struct hr_grammar *g = compile(gbnf);
    bool ok = grammar_accept_text(g, text, strlen(text)) == 0;
    hr_grammar_free(g);
    return ok;
}

/* Parsing fails with rc, at line:col, with a message containing `what`. */
static void parse_error(const char *gbnf, int rc_want, int line, int col, const char *what)
{
    struct hr_grammar *g = NULL;
    struct hr_err err;
    int rc = hr_grammar_new(NULL, gbnf, NULL, &g, &err);
    cr_assert_eq(rc, rc_want, "'%s': rc %d, want %d (%s)", gbnf, rc, rc_want, err.msg);
    cr_assert_null(g);
    cr_assert(strstr(err.msg, what), "'%s': message '%s' lacks '%s'", gbnf, err.msg, what);
    cr_assert_eq(err.line, line, "'%s': line %d, want %d (%s)", gbnf, err.line, line, err.msg);
    cr_assert_eq(err.column, col, "'%s': column %d, want %d (%s)", gbnf, err.column, col,
                 err.msg);
    if (line > 0) {
        char pos[32];
        snprintf(pos, sizeof pos, "%d:%d: ", line, col);
        cr_assert(strncmp(err.msg, pos, strlen(pos)) == 0, "message '%s' does not start with %s",
                  err.msg, pos);
    }
}

/* A generic JSON grammar written for these tests (bounded whitespace). */
static const char json_gbnf[] =
    "root   ::= ws value\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "object ::=\n"
    "  \"{\" ws (\n"
    "    string \":\" ws value\n"
    "    (\",\" ws string \":\" ws value)*\n"
    "  )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" "
    "[0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= \"-\"? ([0-9] | [1-9] [0-9]{0,15}) (\".\" [0-9]+)? ([eE] [-+]? [0-9]+)? ws\n"
    "ws     ::= | \" \" | \"\\n\" [ \\t]{0,20}   # bounded, as llama.cpp's\n";

/* ---- parser ------------------------------------------------------------------------ */

Test(parse, errors_name_line_and_column)
{
    parse_error("root ::= foo", -EINVAL, 1, 10, "undefined rule 'foo'");
    parse_error("root ::= \"a\" x\n\nx ::= y z\n", -EINVAL, 3, 7, "undefined rule 'y'");
    parse_error("a ::= \"x\"", -EINVAL, 0, 0, "no rule named 'root'");
    parse_error("root ::= \"\\q\"", -EINVAL, 1, 11, "bad escape");
    parse_error("root ::= [\\x4g]", -EINVAL, 1, 11, "2 hex digits");
    parse_error("root ::= \"\\uD800\"", -EINVAL, 1, 11, "not a valid character");
    parse_error("root ::= \"\\U00110000\"", -EINVAL, 1, 11, "not a valid character");
    parse_error("root ::= (\"a\" | \"b\"", -EINVAL, 1, 20, "unbalanced parentheses");
    parse_error("root ::= (\"a\"\n  (\"b\")\n", -EINVAL, 3, 1, "expected ')'");
    parse_error("root ::= \"a\" )", -EINVAL, 1, 14, "')' without '('");
    parse_error("root ::= \"abc", -EINVAL, 1, 14, "unterminated string");
    parse_error("root ::= \"ab\nc\"", -EINVAL, 1, 13, "newline in string");
    parse_error("root ::= [abc", -EINVAL, 1, 14, "unterminated character class");
    parse_error("root ::= []", -EINVAL, 1, 10, "empty character class");
    parse_error("root ::= [z-a]", -EINVAL, 1, 11, "bad range");
    parse_error("root ::= \"a\"{3,1}", -EINVAL, 1, 13, "below the minimum");
    parse_error("root ::= \"a\"{x}", -EINVAL, 1, 14, "expected a number");
    parse_error("root ::= \"a\"{}", -EINVAL, 1, 13, "without a count");
    parse_error("root ::= \"a\"{100001}", -E2BIG, 1, 13, "too large");
    parse_error("root ::= * \"a\"", -EINVAL, 1, 10, "nothing before it to repeat");
    parse_error("root \"a\"", -EINVAL, 1, 6, "expected '::='");
    parse_error("::= \"a\"", -EINVAL, 1, 1, "expected a rule name");
    parse_error("root ::= \"a\"\nroot ::= \"b\"", -EINVAL, 2, 1, "defined twice (first at 1:1)");
    parse_error("root ::= \"a\" ::= \"b\"", -EINVAL, 1, 14, "unexpected ':'");
    parse_error("root ::= \"\xff\"", -EINVAL, 1, 11, "invalid UTF-8");
    /* columns count characters, not bytes */
    parse_error("root ::= \"ü\" bad", -EINVAL, 1, 14, "undefined rule 'bad'");
}

Test(parse, left_recursion_is_refused)
{
    parse_error("root ::= root \"a\" | \"b\"", -EINVAL, 1, 1, "left recursion in rule 'root'");
    /* through a rule that can be empty */
    parse_error("root ::= e root \"a\" | \"b\"\ne ::= \"x\"?", -EINVAL, 1, 1,
                "left recursion in rule 'root'");
    /* indirect */
    parse_error("root ::= a\na ::= b \"x\"\nb ::= root | \"y\"", -EINVAL, 1, 1,
                "left recursion");
    /* repeating something that can match nothing */
    parse_error("root ::= (\"a\"?)*", -EINVAL, 1, 16, "can match the empty string");
    /* right recursion is fine */
    cr_assert(matches("root ::= \"a\" root | \"b\"", "aaab"));
    cr_assert(matches("root ::= e \"a\" | \"b\"\ne ::= \"x\"?", "xa"));
}

Test(parse, syntax_accepted)
{
    /* comments, newlines inside parentheses, '|' continuing a rule on the
     * next line (before or after the bar), names with '-' and '_', CRLF */
    const char *g = "# leading comment\n"
                    "root ::= (  # a comment inside\n"
                    "    greeting\n"
                    "    \" \" who_is\n"
                    ")\n"
                    "greeting ::= \"hello\"\n"
                    "  | \"hi\" |\n"
                    "    \"hey\"\r\n"
                    "who_is ::= [a-z]+ # trailing comment\n";
    cr_assert(matches(g, "hello world"));
    cr_assert(matches(g, "hey you"));
    cr_assert(matches(g, "hi x"));
    cr_assert(!matches(g, "hello World"));
    cr_assert(!matches(g, "hello"));

    /* escapes */
    cr_assert(matches("root ::= \"\\n\\t\\r\\\\\\\"\\x41\\u00e9\\U0001F600\"",
                      "\n\t\r\\\"Aé😀"));
    cr_assert(matches("root ::= [\\]\\[\\-^]+", "]-[^"));
    cr_assert(matches("root ::= [-a]+ [b-]", "a-a-"));
    /* [^] is any character, also in a grammar with no other class */
    cr_assert(matches("root ::= [^]+", "aé😀"));
    cr_assert(matches("root ::= [^] \"x\"?", "é"));
    cr_assert(prefix_ok("root ::= [^] \"x\"?", "\xc3"));
    /* an empty rule and empty alternatives */
    cr_assert(matches("root ::= ", ""));
    cr_assert(matches("root ::= \"a\" | ", ""));
    cr_assert(matches("root ::= \"\" \"a\" \"\"*", "a"));
    /* another start rule */
    struct hr_grammar *gr = NULL;
    struct hr_err err;
    cr_assert_eq(hr_grammar_new(NULL, "a ::= \"x\"\nb ::= \"y\"", "b", &gr, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(grammar_accept_text(gr, "y", 1), 0);
    cr_assert(hr_grammar_done(gr));
    hr_grammar_free(gr);
    /* NULL arguments */
    cr_assert_eq(hr_grammar_new(NULL, NULL, NULL, &gr, NULL), -EINVAL);
    hr_grammar_free(NULL);
}

/* ---- the recognizer on text ---------------------------------------------------------------- */

Test(match, literals_classes_alternatives)
{
    const char *g = "root ::= (\"cat\" | \"car\" | \"dog\") \"s\"? [0-9] [^a-z] .";
    cr_assert(matches(g, "cat1!x"));
    cr_assert(matches(g, "cars2Zé"));
    cr_assert(matches(g, "dog0 😀"));
    cr_assert(!matches(g, "cow1!x"));
    cr_assert(!matches(g, "cat1ax"));
    cr_assert(!matches(g, "cat1!"));
    cr_assert(!matches(g, "cat1!xy"));
    cr_assert(prefix_ok(g, "ca"));
    cr_assert(!prefix_ok(g, "cb"));
    /* negated classes with several ranges, non-ASCII ranges */
    cr_assert(matches("root ::= [^a-cx-z0]+", "dwé9"));
    cr_assert(!matches("root ::= [^a-cx-z0]+", "dwy"));
    cr_assert(matches("root ::= [ぁ-ゟ]+", "ひらがな"));
    cr_assert(!matches("root ::= [ぁ-ゟ]+", "ひらカ"));
}

Test(match, repetition_bounds)
{
    const char *g = "root ::= \"ab\"{2,3} x{2} y{,2} z{1,}\nx ::= [0-9]\ny ::= \"-\"\nz ::= \"!\"";
    cr_assert(matches(g, "abab12!"));
    cr_assert(matches(g, "ababab12--!!!"));
    cr_assert(!matches(g, "ab12!"));
    cr_assert(!matches(g, "abababab12!"));
    cr_assert(!matches(g, "abab1!"));
    cr_assert(!matches(g, "abab12---!"));
    cr_assert(!matches(g, "abab12-"));
    for (int n = 0; n <= 12; n++) {
        char s[16] = {0};
        memset(s, 'a', (size_t)n);
        cr_assert_eq(matches("root ::= \"a\"{3,7}", s), n >= 3 && n <= 7, "n=%d", n);
        cr_assert_eq(matches("root ::= \"a\"{5}", s), n == 5, "n=%d", n);
        cr_assert_eq(matches("root ::= (\"a\")* | \"b\"", s), true, "n=%d", n);
        cr_assert_eq(matches("root ::= \"a\"+", s), n >= 1, "n=%d", n);
    }
}

Test(match, nesting_and_done)
{
    const char *g = "root ::= \"(\" root \")\" | \"x\"";
    cr_assert(matches(g, "((((x))))"));
    cr_assert(!matches(g, "((x)"));
    cr_assert(!matches(g, "(x))"));

    struct hr_grammar *gr = compile("root ::= \"yes\" | \"no\" | \"a\"+");
    cr_assert(!grammar_can_end(gr));
    cr_assert(!hr_grammar_done(gr));
    cr_assert_eq(grammar_accept_text(gr, "ye", 2), 0);
    cr_assert(!grammar_can_end(gr));
    cr_assert_eq(grammar_accept_text(gr, "x", 1), -EINVAL); /* rejected: state unchanged */
    cr_assert_eq(grammar_accept_text(gr, "s", 1), 0);
    cr_assert(grammar_can_end(gr));
    cr_assert(hr_grammar_done(gr));
    cr_assert_eq(grammar_accept_text(gr, "s", 1), -EINVAL);
    hr_grammar_free(gr);

    gr = compile("root ::= \"yes\" | \"no\" | \"a\"+");
    cr_assert_eq(grammar_accept_text(gr, "aa", 2), 0);
    cr_assert(grammar_can_end(gr));
    cr_assert(!hr_grammar_done(gr)); /* more a's may follow */
    hr_grammar_free(gr);
}

Test(match, utf8_split_across_feeds)
{
    /* "€" is E2 82 AC: every prefix is alive, a wrong continuation is not */
    struct hr_grammar *g = compile("root ::= \"€\" [ぁ-ゟ]");
    cr_assert(grammar_check_text(g, "\xe2", 1));
    cr_assert(grammar_check_text(g, "\xe2\x82", 2));
    cr_assert(!grammar_check_text(g, "\xe2\x83", 2)); /* U+20C0.. cannot be € */
    cr_assert(!grammar_check_text(g, "\xe3", 1));
    cr_assert_eq(grammar_accept_text(g, "\xe2", 1), 0);
    cr_assert(!grammar_can_end(g));
    cr_assert_eq(grammar_accept_text(g, "\x82", 1), 0);
    cr_assert_eq(grammar_accept_text(g, "\xac\xe3", 2), 0); /* € and half of ひ */
    cr_assert(!grammar_check_text(g, "\x80\x80", 2));        /* U+3000 is not in ぁ-ゟ */
    cr_assert_eq(grammar_accept_text(g, "\x81", 1), 0);
    cr_assert_eq(grammar_accept_text(g, "\xb2", 1), 0); /* ひ U+3072 */
    cr_assert(grammar_can_end(g));
    cr_assert(hr_grammar_done(g));
    hr_grammar_free(g);

    /* negated classes and partial characters: [^é] allows a C3 lead (other
     * characters start with it) but not C3 A9 */
    g = compile("root ::= [^é]");
    cr_assert(grammar_check_text(g, "\xc3", 1));
    cr_assert(!grammar_check_text(g, "\xc3\xa9", 2));
    cr_assert(grammar_check_text(g, "\xc3\xa8", 2));
    hr_grammar_free(g);
    /* a class that covers every continuation of a lead byte */
    g = compile("root ::= [^\\u0080-\\u00BF]");
    cr_assert(!grammar_check_text(g, "\xc2", 1));
    cr_assert(grammar_check_text(g, "\xc3", 1));
    hr_grammar_free(g);

    /* invalid UTF-8 is rejected even by "." */
    cr_assert(!prefix_ok("root ::= .+", "\xc0\x80"));       /* overlong */
    cr_assert(!prefix_ok("root ::= .+", "\xed\xa0\x80"));   /* surrogate */
    cr_assert(!prefix_ok("root ::= .+", "\xf4\x90\x80\x80")); /* past U+10FFFF */
    cr_assert(!prefix_ok("root ::= .+", "\x80"));           /* stray continuation */
    cr_assert(matches("root ::= .+", "\xf4\x8f\xbf\xbf"));  /* U+10FFFF */
}

Test(match, ambiguity_stays_bounded)
{
    /* two identical alternatives per step: without deduplication the stacks
     * would double with every character */
    const char *g = "root ::= (\"a\" | \"a\" | [a-z])* \"b\"";
    char text[2002];
    memset(text, 'a', 2000);
    text[2000] = 'b';
    text[2001] = '\0';
    cr_assert(matches(g, text));
    text[1000] = 'B';
    cr_assert(!matches(g, text));
}

Test(match, json_documents)
{
    const char *good[] = {
        "{}", "[]", "0", "-12.5e+3", "\"\"", "true", "null",
        "{\"a\": [1, 2, {\"b\": null}], \"c\": \"x\\\"y\\u00e9\\n\"}",
        "[\n  {\"k\": false},\n  \"ü😀\"\n]",
    };
    const char *bad[] = {
        "{", "[1,]", "01", "{\"a\" 1}", "\"\\x\"", "{'a': 1}", "[1 2]",
        "\"tab\there\"", "{\"a\":1}}", "tru", "1.", "[\n                                  1]",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_assert(matches(json_gbnf, good[i]), "rejected: %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert(!matches(json_gbnf, bad[i]), "accepted: %s", bad[i]);
}

/* ---- JSON Schema → GBNF ---------------------------------------------------------------- */

static char *schema_gbnf(const char *schema)
{
    char *g = NULL;
    struct hr_err err;
    int rc = hr_grammar_from_json_schema(schema, &g, &err);
    cr_assert_eq(rc, 0, "schema refused (%d): %s\n%s", rc, err.msg, schema);
    cr_assert_not_null(g);
    return g;
}

/* Every good document matches the schema's grammar, no bad one does. */
static void schema_case(const char *schema, const char *const *good, const char *const *bad)
{
    char *g = schema_gbnf(schema);
    for (size_t i = 0; good[i]; i++)
        cr_assert(matches(g, good[i]), "schema %s\nrejects %s\ngrammar:\n%s", schema, good[i], g);
    for (size_t i = 0; bad[i]; i++)
        cr_assert(!matches(g, bad[i]), "schema %s\naccepts %s\ngrammar:\n%s", schema, bad[i], g);
    free(g);
}

static void schema_error(const char *schema, int rc_want, const char *what)
{
    char *g = NULL;
    struct hr_err err;
    int rc = hr_grammar_from_json_schema(schema, &g, &err);
    cr_assert_eq(rc, rc_want, "%s: rc %d want %d (%s)", schema, rc, rc_want, err.msg);
    cr_assert_null(g);
    cr_assert(strstr(err.msg, what), "%s: message '%s' lacks '%s'", schema, err.msg, what);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(schema, object_required_optional_closed)
{
    schema_case("{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"},"
                " \"age\": {\"type\": \"integer\"}, \"email\": {\"type\": \"string\"}},"
                " \"required\": [\"age\", \"name\"], \"additionalProperties\": false}",
                L("{\"name\":\"Al\",\"age\":30}", "{\"name\": \"Al\", \"age\": -3, \"email\": \"a@b\"}",
                  "{\n  \"name\": \"\\u00e9\\n\",\n  \"age\": 0\n}"),
                L("{\"name\":\"Al\"}", "{\"age\":30}", "{\"name\":\"Al\",\"age\":30,\"x\":1}",
                  "{\"name\":\"Al\",\"age\":3.5}", "{\"name\":1,\"age\":3}",
                  "{\"age\":30,\"name\":\"Al\"}", /* required keys come in "properties" order */
                  "{\"name\":\"Al\",\"age\":30,}", "{\"name\":\"Al\",\"age\":30"));
    /* no required keys: any subset, in order, no stray commas */
    schema_case("{\"properties\": {\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"number\"},"
                " \"c\": {\"type\": \"boolean\"}}}",
                L("{}", "{\"b\": 1}", "{\"a\": \"x\", \"c\": true}", "{\"a\":\"\",\"b\":2e5,\"c\":false}",
                  "{\"c\": false}"),
                L("{,}", "{,\"b\":1}", "{\"b\":1,}", "{\"b\":1,\"a\":\"x\"}", "{\"d\":1}",
                  "{\"a\":\"x\",\"a\":\"y\"}"));
}

Test(schema, additional_properties)
{
    /* true: other keys with any value, but not the declared names again */
    schema_case("{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"},"
                " \"größe\": {\"type\": \"number\"}}, \"required\": [\"name\"],"
                " \"additionalProperties\": true}",
                L("{\"name\":\"x\"}", "{\"name\":\"x\",\"extra\":[1,{\"a\":null}]}",
                  "{\"name\":\"x\",\"nam\":1}", "{\"name\":\"x\",\"names\":1,\"n\":2}",
                  "{\"name\":\"x\",\"größe\":1,\"größer\":2,\"\":3}"),
                L("{\"name\":\"x\",\"name\":1}", "{\"name\":\"x\",\"größe\":1,\"größe\":2}",
                  "{\"extra\":1}"));
    /* a schema: the values of other keys follow it */
    schema_case("{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}}",
                L("{}", "{\"a\": 1, \"b\": 2}"), L("{\"a\": \"x\"}", "{\"a\": 1,}"));
    /* no properties, nothing said: any object */
    schema_case("{\"type\": \"object\"}", L("{}", "{\"a\": [true]}"), L("[]", "{\"a\"}"));
    /* a key that needs escaping */
    schema_case("{\"properties\": {\"a\\\"b\": {\"const\": 1}}, \"required\": [\"a\\\"b\"]}",
                L("{\"a\\\"b\": 1}"), L("{\"a\\\"b\": 2}", "{\"ab\": 1}"));
}

Test(schema, arrays)
{
    schema_case("{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"minItems\": 1,"
                " \"maxItems\": 3}",
                L("[1]", "[1, 2, 3]", "[ -4 ,5]"), L("[]", "[1,2,3,4]", "[1.5]", "[1,]"));
    schema_case("{\"type\": \"array\", \"items\": {\"type\": \"string\"}}",
                L("[]", "[\"a\", \"b\", \"c\", \"d\", \"e\"]"), L("[1]", "[\"a\" \"b\"]"));
    schema_case("{\"type\": \"array\", \"maxItems\": 0}", L("[]"), L("[1]"));
    schema_case("{\"type\": \"array\"}", L("[]", "[1, \"x\", null, {}]"), L("{}"));
    /* tuples */
    schema_case("{\"type\": \"array\", \"prefixItems\": [{\"type\": \"string\"},"
                " {\"type\": \"integer\"}]}",
                L("[\"a\", 1]"), L("[1, \"a\"]", "[\"a\"]", "[\"a\", 1, 2]"));
}

Test(schema, strings_and_scalars)
{
    schema_case("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}",
                L("\"ab\"", "\"abc\"", "\"\\n\\u0041\"", "\"日本\""),
                L("\"a\"", "\"abcd\"", "ab", "\"a\"b\""));
    schema_case("{\"enum\": [\"red\", \"green\", 3, null, {\"k\": [1]}]}",
                L("\"red\"", "\"green\"", "3", "null", "{\"k\":[1]}"),
                L("\"blue\"", "4", "\"Red\"", "{\"k\": [1]}"));
    schema_case("{\"const\": \"x\\u00e9\\\"\"}", L("\"xé\\\"\""), L("\"x\""));
    schema_case("{\"type\": \"string\", \"format\": \"date\"}",
                L("\"2024-02-29\"", "\"1999-12-31\""), L("\"2024-13-01\"", "\"2024-1-01\""));
    schema_case("{\"type\": \"string\", \"format\": \"date-time\"}",
                L("\"2024-02-29T13:45:00Z\"", "\"2024-02-29T23:59:59.123+02:00\""),
                L("\"2024-02-29 13:45:00Z\"", "\"2024-02-29T24:00:00Z\""));
    schema_case("{\"type\": \"string\", \"format\": \"uuid\"}",
                L("\"123e4567-e89b-12d3-a456-426614174000\""), L("\"123e4567\""));
    schema_case("{\"type\": \"string\", \"format\": \"email\"}", L("\"anything\""), L("1"));
    schema_case("{\"type\": \"number\"}", L("0", "-1.25", "3e-7", "1E+2"),
                L("01", "1.", ".5", "+1", "\"1\"", "NaN"));
    schema_case("{\"type\": \"boolean\"}", L("true", "false"), L("1", "\"true\""));
    schema_case("{\"type\": \"null\"}", L("null"), L("0", "\"null\""));
    schema_case("{\"type\": [\"string\", \"null\"]}", L("\"s\"", "null"), L("1"));
    schema_case("{\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"array\","
                " \"items\": {\"type\": \"boolean\"}}], \"description\": \"n or flags\"}",
                L("12", "[true, false]"), L("\"12\"", "[1]"));
    schema_case("{\"oneOf\": [{\"const\": 1}, {\"const\": 2}]}", L("1", "2"), L("3"));
    schema_case("true", L("{\"a\": [1, \"x\", null]}", "3"), L("{"));
}

/* minimum/maximum on integers: exact, checked value by value */
Test(schema, integer_ranges)
{
    const struct { const char *kw; long lo, hi; } cases[] = {
        {"\"minimum\": -5, \"maximum\": 1234", -5, 1234},
        {"\"minimum\": 0, \"maximum\": 150", 0, 150},
        {"\"minimum\": 7", 7, 100000},
        {"\"maximum\": -20", -100000, -20},
        {"\"exclusiveMinimum\": 9, \"exclusiveMaximum\": 101", 10, 100},
        {"\"minimum\": -1234, \"maximum\": -99", -1234, -99},
        {"\"minimum\": 19, \"maximum\": 19", 19, 19},
        {"\"minimum\": 1.5, \"maximum\": 999.9", 2, 999},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char schema[200];
        snprintf(schema, sizeof schema, "{\"type\": \"integer\", %s}", cases[k].kw);
        char *g = schema_gbnf(schema);
        for (long v = -1500; v <= 1500; v++) {
            char num[32];
            snprintf(num, sizeof num, "%ld", v);
            bool want = v >= cases[k].lo && v <= cases[k].hi;
            cr_assert_eq(matches(g, num), want, "%s: %ld %s\n%s", schema, v,
                         want ? "rejected" : "accepted", g);
        }
        cr_assert(!matches(g, "007"));
        cr_assert(!matches(g, "-0"));
        free(g);
    }
}

Test(schema, refs_and_all_of)
{
    /* a recursive linked list through $defs */
    schema_case("{\"$defs\": {\"node\": {\"type\": \"object\", \"properties\": {\"v\": "
                "{\"type\": \"integer\"}, \"next\": {\"anyOf\": [{\"$ref\": \"#/$defs/node\"},"
                " {\"type\": \"null\"}]}}, \"required\": [\"v\", \"next\"]}},"
                " \"$ref\": \"#/$defs/node\"}",
                L("{\"v\": 1, \"next\": null}",
                  "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {\"v\": 3, \"next\": null}}}"),
                L("{\"v\": 1}", "{\"v\": 1, \"next\": {\"v\": 2}}"));
    schema_case("{\"definitions\": {\"c\": {\"enum\": [\"r\", \"g\"]}}, \"type\": \"array\","
                " \"items\": {\"$ref\": \"#/definitions/c\"}}",
                L("[\"r\", \"g\", \"r\"]"), L("[\"b\"]"));
    /* "#": the whole schema */
    schema_case("{\"type\": \"array\", \"items\": {\"anyOf\": [{\"type\": \"integer\"},"
                " {\"$ref\": \"#\"}]}}",
                L("[1, [2, [3, []]]]"), L("[1, [\"x\"]]"));
    schema_case("{\"allOf\": [{\"properties\": {\"a\": {\"type\": \"boolean\"}},"
                " \"required\": [\"a\"]}, {\"properties\": {\"b\": {\"const\": \"x\"}}}]}",
                L("{\"a\": true}", "{\"a\": false, \"b\": \"x\"}"),
                L("{\"b\": \"x\"}", "{\"a\": true, \"b\": \"y\"}"));
}

Test(schema, errors)
{
    schema_error("{\"type\": \"string\", \"pattern\": \"^a+$\"}", -EINVAL, "\"pattern\" is not supported");
    schema_error("{\"properties\": {\"a\": {\"not\": {}}}}", -EINVAL,
                 "schema at /properties/a: \"not\" is not supported");
    schema_error("{\"type\": \"object\",\n \"properties\": [}", -EINVAL,
                 "schema is not valid JSON: 2:");
    schema_error("{\"$ref\": \"#/$defs/missing\"}", -EINVAL, "does not resolve");
    schema_error("{\"$ref\": \"https://example.com/s.json\"}", -EINVAL, "does not resolve");
    schema_error("{\"type\": \"strin\"}", -EINVAL, "unknown type \"strin\"");
    schema_error("false", -EINVAL, "matches nothing");
    schema_error("{\"items\": {\"type\": \"array\", \"minItems\": 3, \"maxItems\": 2}}", -EINVAL,
                 "schema at /items: maxItems is below minItems");
    schema_error("{\"type\": \"integer\", \"minimum\": 5, \"maximum\": 4}", -EINVAL,
                 "no integer between");
    schema_error("{\"type\": \"string\", \"minLength\": 100000}", -E2BIG, "too large");
    schema_error("{\"anyOf\": [{\"type\": \"string\"}], \"properties\": {}}", -EINVAL,
                 "anyOf next to \"properties\"");
    schema_error("{\"allOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]}", -EINVAL,
                 "allOf is supported for object schemas only");
    /* deep nesting is bounded */
    char deep[2000] = "";
    for (int i = 0; i < 100; i++)
        strcat(deep, "{\"items\":");
    strcat(deep, "true");
    for (int i = 0; i < 100; i++)
        strcat(deep, "}");
    schema_error(deep, -E2BIG, "nested too deeply");
    char *g = NULL;
    cr_assert_eq(hr_grammar_from_json_schema(NULL, &g, NULL), -EINVAL);
}

/* ---- generation with real models ---------------------------------------------------------- */

struct gen {
    struct hr_model *m;
    struct hr_ctx *ctx;
    const struct hr_vocab *v;
    int32_t n_vocab;
};

static void gen_open(struct gen *r, const char *path)
{
    struct hr_err err;
    cr_assert_eq(hr_model_load(path, NULL, &r->m, &err), 0, "%s: %s", path, err.msg);
    struct hr_ctx_params cp = {.n_ctx = 512, .n_batch = 64, .n_threads = 1};
    cr_assert_eq(hr_ctx_new(r->m, &cp, &r->ctx, &err), 0, "%s", err.msg);
    r->v = hr_model_vocab(r->m);
    r->n_vocab = hr_model_n_vocab(r->m);
}

static void gen_close(struct gen *r)
{
    hr_ctx_free(r->ctx);
    hr_model_free(r->m);
}

/* Generates with the grammar until EOG, hr_grammar_done or max_tokens;
 * returns the text (owned). *complete: the grammar accepted a whole
 * sentence by then. */
static char *generate(struct gen *r, const char *gbnf, const struct hr_sampler_params *sp,
                      const char *prompt, int max_tokens, bool *complete)
{
    struct hr_err err;
    struct hr_grammar *g = NULL;
    cr_assert_eq(hr_grammar_new(r->v, gbnf, NULL, &g, &err), 0, "%s", err.msg);
    struct hr_sampler *s = NULL;
    cr_assert_eq(hr_sampler_new(sp, r->n_vocab, &s), 0);

    hr_ctx_truncate(r->ctx, 0);
    int32_t toks[128];
    int64_t n = hr_tokenize(r->v, prompt, strlen(prompt), true, false, toks, 128);
    cr_assert(n > 0 && n <= 128);
    for (int64_t i = 0; i < n; i++)
        hr_sampler_accept(s, toks[i]); /* the prompt: penalties only */
    cr_assert_eq(hr_ctx_eval(r->ctx, toks, (int32_t)n, false, &err), 0, "%s", err.msg);
    hr_sampler_set_grammar(s, g);

    size_t cap = 4096, len = 0;
    char *out = calloc(1, cap);
    *complete = false;
    for (int i = 0; i < max_tokens; i++) {
        int32_t t = hr_sampler_sample(s, hr_ctx_logits(r->ctx, -1));
        cr_assert(t >= 0, "sample failed: %d after '%s'", t, out);
        cr_assert(grammar_allows(g, t), "sampled token %d the grammar does not allow", t);
        cr_assert_eq(hr_sampler_accept_generated(s, t), 0);
        if (hr_vocab_is_eog(r->v, t)) {
            *complete = true;
            break;
        }
        char piece[256];
        int64_t pl = hr_token_to_piece(r->v, t, false, piece, sizeof piece);
        cr_assert(pl > 0 && (size_t)pl < sizeof piece && len + (size_t)pl < cap);
        memcpy(out + len, piece, (size_t)pl);
        len += (size_t)pl;
        if (hr_grammar_done(g)) {
            *complete = true;
            break;
        }
        cr_assert_eq(hr_ctx_eval(r->ctx, &t, 1, false, &err), 0, "%s", err.msg);
    }
    if (getenv("GRAMMAR_TEST_SHOW")) fprintf(stderr, "out: %s\n", out);
    hr_sampler_free(s);
    hr_grammar_free(g);
    return out;
}

/* The text is a whole sentence of the grammar (checked from scratch, on text). */
static void assert_sentence(const char *gbnf, const char *text)
{
    cr_assert(matches(gbnf, text), "output is not a sentence of the grammar: '%s'", text);
}

static struct hr_sampler_params temp1(uint64_t seed, bool filters)
{
    struct hr_sampler_params p;
    hr_sampler_defaults(&p, seed);
    p.temp = 1.0f;
    if (!filters) {
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0.0f;
    }
    return p;
}

/* A person record: the model writes stories, never this. */
static const char person_gbnf[] =
    "root ::= \"{\" ws \"\\\"name\\\"\" ws \":\" ws name ws \",\" ws \"\\\"age\\\"\" ws \":\" ws"
    " age ws \",\" ws \"\\\"tags\\\"\" ws \":\" ws tags ws \"}\"\n"
    "name ::= \"\\\"\" [A-Z] [a-z]{1,12} \"\\\"\"\n"
    "age  ::= [1-9] [0-9]?\n"
    "tags ::= \"[\" ( tag (\",\" ws tag){0,3} )? \"]\"\n"
    "tag  ::= \"\\\"\" [a-z ]{1,10} \"\\\"\"\n"
    "ws   ::= \" \"?\n";

static void check_person(const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    cr_assert_not_null(doc, "not JSON: '%s' (%s)", text, je.text);
    json_t *name = json_object_get(doc, "name"), *age = json_object_get(doc, "age");
    json_t *tags = json_object_get(doc, "tags");
    cr_assert(json_is_string(name) && json_string_length(name) >= 2, "%s", text);
    cr_assert(json_is_integer(age) && json_integer_value(age) >= 1 &&
              json_integer_value(age) <= 99, "%s", text);
    cr_assert(json_is_array(tags) && json_array_size(tags) <= 4, "%s", text);
    json_decref(doc);
}

Test(generate, stories_json_record_every_seed, .timeout = 300)
{
    struct gen r;
    gen_open(&r, tu_stories());
    for (uint64_t seed = 1; seed <= 6; seed++) {
        bool complete;
        struct hr_sampler_params p = temp1(seed, seed % 2 == 0);
        char *out = generate(&r, person_gbnf, &p, "Once upon a time", 200, &complete);
        cr_assert(complete, "seed %lu: grammar not complete after 200 tokens: '%s'",
                  (unsigned long)seed, out);
        assert_sentence(person_gbnf, out);
        check_person(out);
        free(out);
    }
    gen_close(&r);
}

Test(generate, stories_unicode_and_exact_text, .timeout = 300)
{
    /* byte-fallback tokens: characters the vocabulary only has as bytes,
     * split across tokens; and digits/letters in an order no story has */
    const char *g = "root ::= \"zq\" [0-9]{3} \"ü\" [ぁ-ゟ]{2} (\"yes\" | \"no\") \"!\"";
    struct gen r;
    gen_open(&r, tu_stories());
    for (uint64_t seed = 7; seed <= 10; seed++) {
        bool complete;
        struct hr_sampler_params p = temp1(seed, seed % 2 == 0);
        char *out = generate(&r, g, &p, "Lily saw a dog", 100, &complete);
        cr_assert(complete, "seed %lu: incomplete '%s'", (unsigned long)seed, out);
        assert_sentence(g, out);
        free(out);
    }
    gen_close(&r);
}

Test(generate, stories_tool_arguments_from_schema, .timeout = 300)
{
    const char *schema =
        "{\"type\": \"object\", \"properties\": {"
        "\"city\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 12},"
        "\"days\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 7},"
        "\"unit\": {\"enum\": [\"celsius\", \"fahrenheit\"]},"
        "\"alerts\": {\"type\": \"boolean\"}},"
        "\"required\": [\"city\", \"days\", \"unit\"]}";
    char *g = schema_gbnf(schema);
    struct gen r;
    gen_open(&r, tu_stories());
    for (uint64_t seed = 11; seed <= 16; seed++) {
        bool complete;
        struct hr_sampler_params p = temp1(seed, seed % 2 == 0);
        char *out = generate(&r, g, &p, "The weather", 400, &complete);
        cr_assert(complete, "seed %lu: incomplete '%s'", (unsigned long)seed, out);
        assert_sentence(g, out);
        json_error_t je;
        json_t *doc = json_loads(out, 0, &je);
        cr_assert_not_null(doc, "not JSON: '%s' (%s)", out, je.text);
        json_t *city = json_object_get(doc, "city"), *days = json_object_get(doc, "days");
        json_t *unit = json_object_get(doc, "unit"), *alerts = json_object_get(doc, "alerts");
        cr_assert(json_is_string(city) && json_string_length(city) >= 1, "%s", out);
        cr_assert(json_is_integer(days) && json_integer_value(days) >= 1 &&
                  json_integer_value(days) <= 7, "%s", out);
        cr_assert(json_is_string(unit) && (!strcmp(json_string_value(unit), "celsius") ||
                                           !strcmp(json_string_value(unit), "fahrenheit")),
                  "%s", out);
        cr_assert(!alerts || json_is_boolean(alerts), "%s", out);
        cr_assert_leq(json_object_size(doc), 4, "%s", out);
        json_decref(doc);
        free(out);
    }
    gen_close(&r);
    free(g);
}

Test(generate, syn_qwen2_json_value, .timeout = 300)
{
    const char *path = tu_find("models/syn-qwen2-q4_0.gguf");
    if (!path)
        cr_skip_test("syn-qwen2-q4_0.gguf not found");
    struct gen r;
    gen_open(&r, path);
    /* a bounded JSON value: arrays of small numbers or short strings */
    const char *g = "root ::= \"[\" item (\", \" item){0,4} \"]\"\n"
                    "item ::= [1-9] [0-9]{0,2} | \"0\" | \"\\\"\" [a-zA-Z0-9 ]{0,8} \"\\\"\" | \"null\"\n";
    for (uint64_t seed = 1; seed <= 4; seed++) {
        bool complete;
        struct hr_sampler_params p = temp1(seed, seed % 2 == 1);
        char *out = generate(&r, g, &p, "hello", 150, &complete);
        cr_assert(complete, "seed %lu: incomplete '%s'", (unsigned long)seed, out);
        assert_sentence(g, out);
        json_error_t je;
        json_t *doc = json_loads(out, 0, &je);
        cr_assert(json_is_array(doc), "not a JSON array: '%s'", out);
        json_decref(doc);
        free(out);
    }
    gen_close(&r);
}

Test(generate, tokens_and_masks_agree)
{
    /* the whole-vocabulary mask and the one-token check give the same
     * answers, in several grammar states */
    struct gen r;
    gen_open(&r, tu_stories());
    struct hr_grammar *g = NULL;
    struct hr_err err;
    cr_assert_eq(hr_grammar_new(r.v, json_gbnf, NULL, &g, &err), 0, "%s", err.msg);
    const char *feeds[] = {"", "{", " \"na", "me\\u00", "e9\": [1", "2, ", "tr", "ue]}"};
    for (size_t k = 0; k < sizeof feeds / sizeof *feeds; k++) {
        cr_assert_eq(grammar_accept_text(g, feeds[k], strlen(feeds[k])), 0, "%s", feeds[k]);
        const uint8_t *mask = grammar_mask(g);
        cr_assert_not_null(mask);
        int32_t n_allowed = 0;
        for (int32_t t = 0; t < r.n_vocab; t++) {
            bool one = grammar_allows(g, t);
            cr_assert_eq(mask[t] != 0, one, "state %zu token %d: mask %d, check %d", k, t,
                         mask[t], one);
            n_allowed += one;
        }
        cr_assert(n_allowed > 0);
        if (k + 1 == sizeof feeds / sizeof *feeds) {
            /* complete: EOG allowed */
            cr_assert(mask[hr_vocab_eos(r.v)]);
        } else if (k > 0) {
            cr_assert(!mask[hr_vocab_eos(r.v)], "EOG allowed mid-document (state %zu)", k);
        }
    }
    /* hr_grammar_accept refuses a token the grammar does not allow */
    int32_t bad = -1;
    for (int32_t t = 0; t < r.n_vocab && bad < 0; t++)
        if (!grammar_allows(g, t) && !hr_vocab_is_eog(r.v, t))
            bad = t;
    cr_assert(bad >= 0);
    cr_assert_eq(hr_grammar_accept(g, bad), -EINVAL);
    cr_assert_eq(hr_grammar_accept(g, -1), -EINVAL);
    hr_grammar_free(g);
    gen_close(&r);
}

Test(generate, sampler_without_grammar_unchanged)
{
    /* attaching and detaching a grammar leaves sampling as it was */
    float logits[64];
    for (int i = 0; i < 64; i++)
        logits[i] = (float)((i * 37) % 17) * 0.25f;
    struct hr_sampler_params p;
    hr_sampler_defaults(&p, 42);
    p.top_k = 0;
    struct hr_sampler *a = NULL, *b = NULL;
    cr_assert_eq(hr_sampler_new(&p, 64, &a), 0);
    cr_assert_eq(hr_sampler_new(&p, 64, &b), 0);
    struct hr_grammar *g = compile("root ::= \"x\"");
    hr_sampler_set_grammar(b, g);
    hr_sampler_set_grammar(b, NULL);
    for (int i = 0; i < 50; i++) {
        int32_t ta = hr_sampler_sample(a, logits), tb = hr_sampler_sample(b, logits);
        cr_assert_eq(ta, tb);
        hr_sampler_accept(a, ta);
        cr_assert_eq(hr_sampler_accept_generated(b, tb), 0);
    }
    hr_grammar_free(g);
    hr_sampler_free(a);
    hr_sampler_free(b);
}
