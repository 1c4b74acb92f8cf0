/* qemu-img prints JSON with 4-space indents and "key": value (QEMU's
 * qobject_to_json_pretty); json-c's pretty printer indents differently, so
 * this walks the object itself and leaves only scalars to json-c. */
#include "img/img.h"

#include <json-c/json.h>

static void indent(FILE *f, int level)
{
	for (int i = 0; i < level; i++)
		fputs("    ", f);
}

static void print_value(FILE *f, struct json_object *v, int level)
{
	switch (json_object_get_type(v)) {
	case json_type_object: {
		if (json_object_object_length(v) == 0) {
			fputs("{}", f);
			break;
		}
		fputs("{\n", f);
		size_t i = 0, n = (size_t)json_object_object_length(v);
		json_object_object_foreach(v, key, val) {
			indent(f, level + 1);
			struct json_object *k = json_object_new_string(key);
			fprintf(f, "%s: ", json_object_to_json_string_ext(
				k, JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(k);
			print_value(f, val, level + 1);
			fputs(++i < n ? ",\n" : "\n", f);
		}
		indent(f, level);
		fputc('}', f);
		break;
	}
	case json_type_array: {
		size_t n = json_object_array_length(v);
		if (n == 0) {
			fputs("[]", f);
			break;
		}
		fputs("[\n", f);
		for (size_t i = 0; i < n; i++) {
			indent(f, level + 1);
			print_value(f, json_object_array_get_idx(v, i), level + 1);
			fputs(i + 1 < n ? ",\n" : "\n", f);
		}
		indent(f, level);
		fputc(']', f);
		break;
	}
	default:
		fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE), f);
	}
}

void img_json_print(FILE *f, struct json_object *v)
{
	print_value(f, v, 0);
	fputc('\n', f);
}
