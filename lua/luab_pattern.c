/*
 * luab_pattern.c — the library functions that could keep a script inside C
 * for an unbounded time, made bounded or interruptible.
 *
 * Lua's own pattern matcher (lstrlib) backtracks without limit and never
 * returns to the VM while it does: "(.-)(.-)(.-)x" on a long subject runs
 * for hours and no hook can stop it. string.find, match, gmatch and gsub
 * are therefore replaced by this file's matcher, written from the patterns
 * section of the Lua 5.4 manual (same syntax, captures, anchors, %b, %f,
 * back-references and error messages), which calls the run's watchdog every
 * few thousand steps: past the time slice the script stops with an error.
 * Plain searches use memmem (linear).
 *
 * Bounded up front, before the work starts:
 *   string.rep     a result larger than the memory the script has left is
 *                  refused, and an empty result is returned at once (the
 *                  original loops n times even when it copies nothing);
 *   table.insert, table.remove, table.move
 *                  a shift or move of more elements than the memory cap
 *                  could hold is refused (a lying __len or huge indexes
 *                  would make the originals loop ~2^63 times).
 * Everything else in the safe libraries takes time linear in memory the
 * script must own (bounded by lua.memory), or calls back into Lua, where
 * the count hook watches.
 */
#include "luab_impl.h"

#include <ctype.h>
#include <string.h>

#define MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define MAX_DEPTH 200   /* recursion of the matcher (Lua's MAXCCALLS) */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define SPECIALS "^$*+?.([%-"
#define TICK_MASK 4095u /* steps between watchdog checks */

struct ms {
    const char *src_init, *src_end; /* the subject */
    const char *p_end;              /* end of the pattern (a Lua string: NUL follows) */
    lua_State *L;
    int level;                      /* captures open or closed */
    int depth;                      /* recursion budget left */
    unsigned steps;
    struct {
        const char *init;
        ptrdiff_t len;
    } capture[MAX_CAPTURES];
};

static void tick(struct ms *ms)
{
    if ((++ms->steps & TICK_MASK) == 0)
        luab_watchdog(ms->L);
}

static int check_capture(struct ms *ms, int l)
{
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    return l;
}

static int capture_to_close(struct ms *ms)
{
    int level = ms->level;
    for (level--; level >= 0; level--)
        if (ms->capture[level].len == CAP_UNFINISHED)
            return level;
    return luaL_error(ms->L, "invalid pattern capture");
}

/* End of the single character class starting at p. */
static const char *class_end(struct ms *ms, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p == ms->p_end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        do { /* the first character after [ or [^ is part of the set, even ']' */
            if (p == ms->p_end)
                luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*(p++) == '%' && p < ms->p_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

static bool match_class(int c, int cl)
{
    bool res;
    switch (tolower(cl)) {
    case 'a': res = isalpha(c); break;
    case 'c': res = iscntrl(c); break;
    case 'd': res = isdigit(c); break;
    case 'g': res = isgraph(c); break;
    case 'l': res = islower(c); break;
    case 'p': res = ispunct(c); break;
    case 's': res = isspace(c); break;
    case 'u': res = isupper(c); break;
    case 'w': res = isalnum(c); break;
    case 'x': res = isxdigit(c); break;
    case 'z': res = c == 0; break; /* deprecated in Lua 5.2, still accepted */
    default: return cl == c; /* %. %% %] ...: the character itself */
    }
    return isupper(cl) ? !res : res;
}

/* c in the set [p, ec]: p at '[', ec at its closing ']'. */
static bool match_bracket(int c, const char *p, const char *ec)
{
    bool sig = true;
    if (*(p + 1) == '^') {
        sig = false;
        p++;
    }
    while (++p < ec) {
        if (*p == '%') {
            p++;
            if (match_class(c, (unsigned char)*p))
                return sig;
        } else if (*(p + 1) == '-' && p + 2 < ec) {
            if ((unsigned char)*p <= c && c <= (unsigned char)*(p + 2))
                return sig;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return sig;
        }
    }
    return !sig;
}

static bool single_match(struct ms *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return true;
    case '%': return match_class(c, (unsigned char)*(p + 1));
    case '[': return match_bracket(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *do_match(struct ms *ms, const char *s, const char *p);

static const char *match_balance(struct ms *ms, const char *s, const char *p)
{
    if (p + 1 >= ms->p_end)
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p)
        return NULL;
    int b = *p, e = *(p + 1), cont = 1;
    while (++s < ms->src_end) {
        tick(ms);
        if (*s == e) {
            if (--cont == 0)
                return s + 1;
        } else if (*s == b) {
            cont++;
        }
    }
    return NULL;
}

static const char *max_expand(struct ms *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single_match(ms, s + i, p, ep)) {
        i++;
        tick(ms);
    }
    while (i >= 0) { /* try with the longest run first */
        const char *res = do_match(ms, s + i, ep + 1);
        if (res)
            return res;
        i--;
        tick(ms);
    }
    return NULL;
}

static const char *min_expand(struct ms *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        tick(ms);
        const char *res = do_match(ms, s, ep + 1);
        if (res)
            return res;
        if (single_match(ms, s, p, ep))
            s++;
        else
            return NULL;
    }
}

static const char *start_capture(struct ms *ms, const char *s, const char *p, ptrdiff_t what)
{
    if (ms->level >= MAX_CAPTURES)
        luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *res = do_match(ms, s, p);
    if (!res)
        ms->level--;
    return res;
}

static const char *end_capture(struct ms *ms, const char *s, const char *p)
{
    int l = capture_to_close(ms);
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = do_match(ms, s, p);
    if (!res)
        ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

static const char *match_capture(struct ms *ms, const char *s, int l)
{
    l = check_capture(ms, l);
    size_t len = (size_t)ms->capture[l].len;
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

/* Matches pattern p against the subject from s: the end of the match, or
 * NULL. */
static const char *do_match(struct ms *ms, const char *s, const char *p)
{
    if (ms->depth-- == 0)
        luaL_error(ms->L, "pattern too complex");
    tick(ms);
    while (s && p != ms->p_end) {
        switch (*p) {
        case '(':
            if (*(p + 1) == ')')
                s = start_capture(ms, s, p + 2, CAP_POSITION);
            else
                s = start_capture(ms, s, p + 1, CAP_UNFINISHED);
            goto done;
        case ')':
            s = end_capture(ms, s, p + 1);
            goto done;
        case '$':
            if (p + 1 != ms->p_end)
                goto dflt; /* a '$' inside the pattern is a plain character */
            s = s == ms->src_end ? s : NULL;
            goto done;
        case '%':
            switch (*(p + 1)) {
            case 'b':
                s = match_balance(ms, s, p + 2);
                if (s)
                    p += 4;
                continue;
            case 'f': {
                p += 2;
                if (*p != '[')
                    luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(ms, p);
                int prev = s == ms->src_init ? 0 : (unsigned char)*(s - 1);
                int cur = s < ms->src_end ? (unsigned char)*s : 0;
                if (!match_bracket(prev, p, ep - 1) && match_bracket(cur, p, ep - 1))
                    p = ep;
                else
                    s = NULL;
                continue;
            }
            case '0': case '1': case '2': case '3': case '4':
            case '5': case '6': case '7': case '8': case '9':
                s = match_capture(ms, s, (unsigned char)*(p + 1));
                if (s)
                    p += 2;
                continue;
            default:
                goto dflt;
            }
        default:
        dflt: {
            const char *ep = class_end(ms, p);
            if (!single_match(ms, s, p, ep)) {
                if (*ep == '*' || *ep == '?' || *ep == '-') {
                    p = ep + 1; /* may match zero times */
                    continue;
                }
                s = NULL;
                continue;
            }
            switch (*ep) {
            case '?': {
                const char *res = do_match(ms, s + 1, ep + 1);
                if (res) {
                    s = res;
                    goto done;
                }
                p = ep + 1;
                continue;
            }
            case '+':
                s = max_expand(ms, s + 1, p, ep);
                goto done;
            case '*':
                s = max_expand(ms, s, p, ep);
                goto done;
            case '-':
                s = min_expand(ms, s, p, ep);
                goto done;
            default:
                s++;
                p = ep;
                continue;
            }
        }
        }
    }
done:
    ms->depth++;
    return s;
}

/* ---- captures ------------------------------------------------------------------ */

static size_t get_onecapture(struct ms *ms, int i, const char *s, const char *e,
                             const char **cap)
{
    if (i >= ms->level) {
        if (i != 0)
            luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        *cap = s; /* no captures: the whole match */
        return (size_t)(e - s);
    }
    ptrdiff_t l = ms->capture[i].len;
    *cap = ms->capture[i].init;
    if (l == CAP_UNFINISHED)
        luaL_error(ms->L, "unfinished capture");
    else if (l == CAP_POSITION)
        lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    return (size_t)l;
}

static void push_onecapture(struct ms *ms, int i, const char *s, const char *e)
{
    const char *cap;
    ptrdiff_t l = (ptrdiff_t)get_onecapture(ms, i, s, e, &cap);
    if (l != CAP_POSITION)
        lua_pushlstring(ms->L, cap, (size_t)l);
}

static int push_captures(struct ms *ms, const char *s, const char *e)
{
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_onecapture(ms, i, s, e);
    return n;
}

static void prepare(struct ms *ms, lua_State *L, const char *s, size_t ls, const char *p,
                    size_t lp)
{
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->steps = 0;
}

static void reprep(struct ms *ms)
{
    ms->level = 0;
    ms->depth = MAX_DEPTH;
}

/* ---- find, match, gmatch, gsub ----------------------------------------------------- */

static size_t posrelat(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0)
        return 1;
    if (pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static bool nospecials(const char *p, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if (strchr(SPECIALS, p[i]) && p[i])
            return false;
    return true;
}

static int find_aux(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || nospecials(p, lp))) {
        const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (hit) {
            lua_pushinteger(L, (hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)((hit - s) + lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    struct ms ms;
    const char *s1 = s + init;
    bool anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    prepare(&ms, L, s, ls, p, lp);
    do {
        reprep(&ms);
        const char *e = do_match(&ms, s1, p);
        if (e) {
            if (find) {
                lua_pushinteger(L, (s1 - s) + 1);
                lua_pushinteger(L, e - s);
                return push_captures(&ms, NULL, NULL) + 2;
            }
            return push_captures(&ms, s1, e);
        }
    } while (s1++ < ms.src_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int l_find(lua_State *L)
{
    return find_aux(L, true);
}

static int l_match(lua_State *L)
{
    return find_aux(L, false);
}

struct gmatch_state {
    const char *src, *p, *lastmatch;
    struct ms ms;
};

static int gmatch_aux(lua_State *L)
{
    struct gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    gm->ms.L = L;
    for (const char *src = gm->src; src <= gm->ms.src_end; src++) {
        reprep(&gm->ms);
        const char *e = do_match(&gm->ms, src, gm->p);
        if (e && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            return push_captures(&gm->ms, src, e);
        }
    }
    return 0;
}

static int l_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2); /* the strings stay alive as upvalues */
    struct gmatch_state *gm = lua_newuserdatauv(L, sizeof *gm, 0);
    if (init > ls)
        init = ls + 1; /* no matches */
    prepare(&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_aux, 3);
    return 1;
}

static void add_s(struct ms *ms, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    lua_State *L = ms->L;
    const char *news = lua_tolstring(L, 3, &l);
    const char *p;
    while ((p = memchr(news, '%', l)) != NULL) {
        luaL_addlstring(b, news, (size_t)(p - news));
        p++;
        if (*p == '%') {
            luaL_addchar(b, *p);
        } else if (*p == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (*p >= '1' && *p <= '9') {
            const char *cap;
            ptrdiff_t resl = (ptrdiff_t)get_onecapture(ms, *p - '1', s, e, &cap);
            if (resl == CAP_POSITION)
                luaL_addvalue(b);
            else
                luaL_addlstring(b, cap, (size_t)resl);
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        l -= (size_t)(p + 1 - news);
        news = p + 1;
    }
    luaL_addlstring(b, news, l);
}

/* Adds the replacement of the match [s, e); false when the original is kept. */
static bool add_value(struct ms *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = ms->L;
    switch (tr) {
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_onecapture(ms, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:
        add_s(ms, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

static int l_gsub(lua_State *L)
{
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    bool anchor = *p == '^';
    lua_Integer n = 0;
    bool changed = false;
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                            tr == LUA_TTABLE,
                     3, "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    struct ms ms;
    prepare(&ms, L, src, srcl, p, lp);
    while (n < max_s) {
        reprep(&ms);
        const char *e = do_match(&ms, src, p);
        if (e && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, tr) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        tick(&ms);
        if (anchor)
            break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* ---- bounded originals ------------------------------------------------------------- */

/* The most elements a table function may walk: what the memory cap could hold. */
static lua_Integer max_elems(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    return (lua_Integer)(r->mem_cap / 8);
}

static int call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t left = luab_mem_left(luab_run_of(L));
    if ((size_t)n > left / (l + lsep) + 1 || (size_t)n * l + (size_t)(n - 1) * lsep > left)
        return luaL_error(L, "string.rep: the result would not fit in the script's memory "
                             "(lua.memory)");
    return call_original(L);
}

static int l_insert(lua_State *L)
{
    if (lua_gettop(L) == 3) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_Unsigned e = (lua_Unsigned)luaL_len(L, 1) + 1u;
        lua_Integer pos = luaL_checkinteger(L, 2);
        /* the original shifts e - pos elements when 1 <= pos <= e */
        if ((lua_Unsigned)pos - 1u < e && e - (lua_Unsigned)pos > (lua_Unsigned)max_elems(L))
            return luaL_error(L, "table.insert: too many elements to shift");
    }
    return call_original(L);
}

static int l_remove(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Unsigned size = (lua_Unsigned)luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, (lua_Integer)size);
    /* the original shifts size - pos elements when 1 <= pos <= size */
    if ((lua_Unsigned)pos - 1u < size && size - (lua_Unsigned)pos > (lua_Unsigned)max_elems(L))
        return luaL_error(L, "table.remove: too many elements to shift");
    return call_original(L);
}

static int l_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    if (e >= f && (f <= 0 ? e > max_elems(L) + f : e - f >= max_elems(L)))
        return luaL_error(L, "table.move: too many elements");
    return call_original(L);
}

/* Replaces t[name] by fn, keeping the original as fn's upvalue. */
static void wrap(lua_State *L, int t, const char *name, lua_CFunction fn)
{
    lua_getfield(L, t, name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, t, name);
}

void luab_pattern_install(lua_State *L, int string_idx, int table_idx)
{
    string_idx = lua_absindex(L, string_idx);
    table_idx = lua_absindex(L, table_idx);
    static const luaL_Reg fns[] = {
        {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL},
    };
    lua_pushvalue(L, string_idx);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
    wrap(L, string_idx, "rep", l_rep);
    wrap(L, table_idx, "insert", l_insert);
    wrap(L, table_idx, "remove", l_remove);
    wrap(L, table_idx, "move", l_move);
}
