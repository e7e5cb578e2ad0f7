package places

import "testing"

// sampleLegacy is a Nearby Search (legacy) answer as Google formats it, with
// fields herd does not know, strings that look like JSON structure and
// nested arrays.
const sampleLegacy = `{
   "html_attributions" : [],
   "next_page_token" : "AcJnK\"]}results[",
   "results" : [
      {
         "geometry" : {
            "location" : { "lat" : 34.0689, "lng" : -118.4452 }
         },
         "name" : "Royce \"Hall\" ] \"results\" : [",
         "x_unknown" : [ [ 1, [ 2 ] ], { "a" : [ "]" ] } ],
         "types" : [ "university", "point_of_interest" ]
      },
      {
         "name" : "Powell Library \\",
         "rating" : 4.8,
         "types" : [ "library" ]
      },
      {
         "name" : "Pauley \u005d Pavilion",
         "types" : []
      }
   ],
   "status" : "OK",
   "zz_after" : { "results" : [ 1, 2, 3 ] }
}`

const sampleLegacyCut1 = `{
   "html_attributions" : [],
   "next_page_token" : "AcJnK\"]}results[",
   "results" : [
      {
         "geometry" : {
            "location" : { "lat" : 34.0689, "lng" : -118.4452 }
         },
         "name" : "Royce \"Hall\" ] \"results\" : [",
         "x_unknown" : [ [ 1, [ 2 ] ], { "a" : [ "]" ] } ],
         "types" : [ "university", "point_of_interest" ]
      }
   ],
   "status" : "OK",
   "zz_after" : { "results" : [ 1, 2, 3 ] }
}`

const sampleLegacyCut2 = `{
   "html_attributions" : [],
   "next_page_token" : "AcJnK\"]}results[",
   "results" : [
      {
         "geometry" : {
            "location" : { "lat" : 34.0689, "lng" : -118.4452 }
         },
         "name" : "Royce \"Hall\" ] \"results\" : [",
         "x_unknown" : [ [ 1, [ 2 ] ], { "a" : [ "]" ] } ],
         "types" : [ "university", "point_of_interest" ]
      },
      {
         "name" : "Powell Library \\",
         "rating" : 4.8,
         "types" : [ "library" ]
      }
   ],
   "status" : "OK",
   "zz_after" : { "results" : [ 1, 2, 3 ] }
}`

func TestCutResults(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		limit int
		want  string
	}{
		{"cut to one", sampleLegacy, 1, sampleLegacyCut1},
		{"cut to two", sampleLegacy, 2, sampleLegacyCut2},
		{"limit equals results", sampleLegacy, 3, sampleLegacy},
		{"limit above results", sampleLegacy, 20, sampleLegacy},
		{"compact", `{"results":[1,"]",[3],{"a":4}],"status":"OK"}`, 2, `{"results":[1,"]"],"status":"OK"}`},
		{"scalars end where they end", `{"results":[10 , 20 , 30 ]}`, 1, `{"results":[10 ]}`},
		{"limit zero keeps the brackets", `{"results": [ {"a":1}, {"b":2} ] }`, 0, `{"results": [ ] }`},
		{"no results", `{"html_attributions":[],"status":"ZERO_RESULTS"}`, 1, `{"html_attributions":[],"status":"ZERO_RESULTS"}`},
		{"empty results", `{"results" : [ ],"status":"ZERO_RESULTS"}`, 1, `{"results" : [ ],"status":"ZERO_RESULTS"}`},
		{"results not an array", `{"results":{"a":[1,2]},"x":null}`, 1, `{"results":{"a":[1,2]},"x":null}`},
		{"nested results only", `{"data":{"results":[1,2,3]}}`, 1, `{"data":{"results":[1,2,3]}}`},
		{"escaped key is still results", `{"re\u0073ults":[1,2,3]}`, 1, `{"re\u0073ults":[1]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			got, err := cutResults(body, tt.limit)
			if err != nil {
				t.Fatalf("cutResults: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("cutResults(limit %d) =\n%s\nwant\n%s", tt.limit, got, tt.want)
			}
			if string(body) != tt.body {
				t.Errorf("cutResults changed its input to\n%s", body)
			}
		})
	}
}

func TestCutResultsNotAnObject(t *testing.T) {
	for _, body := range []string{`[{"results":[1,2]}]`, `"results"`, `null`} {
		if got, err := cutResults([]byte(body), 1); err == nil {
			t.Errorf("cutResults(%s) = %s, want an error", body, got)
		}
	}
}
